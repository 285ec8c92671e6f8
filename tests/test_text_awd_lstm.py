
import numpy as np
import pytest
import torch

from lessonlib.text.awd_lstm import (
    AWDLSTM,
    AWDConfig,
    EmbeddingDropout,
    LockedDropout,
    WeightDropLSTM,
    awd_lstm_lm,
    plain_lstm_lm,
)

V = 30



def test_weight_drop_lstm_matches_nn_lstm_without_dropout():
    torch.manual_seed(0)
    ours, ref = WeightDropLSTM(5, 7, weight_p=0.0), torch.nn.LSTM(5, 7, batch_first=True)
    with torch.no_grad():
        for a, b in [("w_ih", "weight_ih_l0"), ("w_hh", "weight_hh_l0"), ("b_ih", "bias_ih_l0"),
                     ("b_hh", "bias_hh_l0")]:
            getattr(ours, a).copy_(getattr(ref, b))
    x, h = torch.randn(2, 4, 5), (torch.zeros(1, 2, 7), torch.zeros(1, 2, 7))
    out, (hn, cn) = ours(x, h)
    ref_out, (ref_h, ref_c) = ref(x, h)
    assert torch.allclose(out, ref_out, atol=1e-6) and torch.allclose(cn, ref_c, atol=1e-6)


def test_weight_drop_changes_training_output_only():
    torch.manual_seed(0)
    rnn = WeightDropLSTM(4, 6, weight_p=0.5)
    x, h = torch.randn(3, 5, 4), (torch.zeros(1, 3, 6), torch.zeros(1, 3, 6))
    rnn.eval()
    assert torch.equal(rnn(x, h)[0], rnn(x, h)[0])
    rnn.train()
    assert not torch.equal(rnn(x, h)[0], rnn(x, h)[0])
    rnn(x, h)[0].sum().backward()
    assert rnn.w_hh.grad is not None and rnn.w_hh.grad.abs().sum() > 0


def test_locked_dropout_uses_one_mask_per_sequence():
    torch.manual_seed(0)
    d = LockedDropout(0.5).train()
    out = d(torch.ones(4, 6, 8))
    assert torch.equal(out, out[:, :1].expand_as(out))  # same mask at every time step
    assert set(out.unique().tolist()) <= {0.0, 2.0}
    d.eval()
    assert torch.equal(d(torch.ones(2, 3, 4)), torch.ones(2, 3, 4))


def test_embedding_dropout_drops_whole_words():
    torch.manual_seed(0)
    emb = EmbeddingDropout(V, 4, pad_id=1, p=0.5).train()
    words = torch.tensor([[3, 3, 5, 5, 7]])
    out = emb(words)
    zero = out.abs().sum(-1) == 0
    assert torch.equal(zero[0, 0], zero[0, 1]) and torch.equal(zero[0, 2], zero[0, 3])
    assert torch.equal(emb(torch.tensor([[1]])), torch.zeros(1, 1, 4))  # padding stays zero


def test_encoder_gives_one_output_per_token():
    enc = AWDLSTM(AWDConfig(V, emb_size=6, n_hid=10, n_layers=3))
    assert enc(torch.randint(0, V, (2, 7))).shape == (2, 7, 6)


def test_encoder_carries_a_detached_state_from_call_to_call():
    enc = AWDLSTM(AWDConfig(V, emb_size=6, n_hid=10, n_layers=3))
    x = torch.randint(0, V, (2, 7))
    enc(x)
    assert len(enc.hidden) == 3 and not enc.hidden[0][0].requires_grad
    first = enc.hidden[0][0].clone()
    enc(x)
    assert not torch.equal(first, enc.hidden[0][0])


def test_reset_a_new_batch_size_or_a_mode_switch_starts_a_fresh_state():
    enc = AWDLSTM(AWDConfig(V, emb_size=6, n_hid=10, n_layers=3))
    enc(torch.randint(0, V, (2, 7)))
    enc.reset()
    assert enc.hidden is None
    enc(torch.randint(0, V, (2, 7)))
    enc(torch.randint(0, V, (5, 3)))
    assert enc.hidden[0][0].shape == (1, 5, 10)
    enc.eval()
    assert enc.hidden is None


def test_encoder_layer_groups_are_the_embedding_then_each_layer():
    enc = AWDLSTM(AWDConfig(V, emb_size=6, n_hid=10, n_layers=3))
    assert enc.layer_groups() == [enc.embedding, *enc.rnns]


def test_encoder_rejects_a_batch_without_a_sequence_axis():
    with pytest.raises(ValueError, match="batch, seq"):
        AWDLSTM(AWDConfig(V, emb_size=6, n_hid=10, n_layers=3))(torch.zeros(3, dtype=torch.long))


def test_carried_state_equals_one_long_pass():
    torch.manual_seed(0)
    enc = AWDLSTM(AWDConfig(V, 6, 10, 2, drop_mult=0.0)).eval()
    x = torch.randint(0, V, (2, 12))
    whole = enc(x)
    enc.reset()
    parts = torch.cat([enc(x[:, :5]), enc(x[:, 5:])], dim=1)
    assert torch.allclose(whole, parts, atol=1e-6)


def test_language_model_is_tied_and_plain_has_no_dropout():
    lm = awd_lstm_lm(AWDConfig(V, 6, 10, 2))
    assert lm.decoder.linear.weight is lm.encoder.embedding.weight
    assert lm(torch.randint(0, V, (2, 5))).shape == (2, 5, V)
    plain = plain_lstm_lm(AWDConfig(V, 6, 10, 2))
    ps = [m.p for m in plain.modules() if hasattr(m, "p")] + [r.weight_p for r in plain.encoder.rnns]
    assert ps and all(p == 0 for p in ps)
    with pytest.raises(TypeError, match="hiden_p"):  # a misspelt dropout is an error, not ignored
        AWDConfig(V, 6, 10, 2, hiden_p=0.1)


def test_adaptive_decoder_gives_normalised_log_probs():
    lm = awd_lstm_lm(AWDConfig(V, 16, 10, 1), adaptive_cutoffs=(10, 20))
    x, y = torch.randint(0, V, (2, 5)), torch.randint(0, V, (2, 5))
    lm.eval()
    logp = lm.log_probs(x)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(2, 5), atol=1e-5)
    lm.reset()
    nll = -logp.gather(-1, y[..., None]).mean()
    assert torch.allclose(lm.decoder.loss(lm(x), y), nll, atol=1e-5)


@pytest.mark.parametrize("cutoffs", [None, (10, 20)])
def test_init_bias_makes_the_untrained_model_predict_unigram_frequencies(cutoffs):
    counts = np.arange(V)[::-1] * 10
    lm = awd_lstm_lm(AWDConfig(V, 16, 10, 2), adaptive_cutoffs=cutoffs)
    lm.init_bias(counts)
    with torch.no_grad():
        probs = lm.eval().decoder.log_probs(torch.zeros(1, 1, 16))[0, 0].exp().double()
    expected = torch.tensor((counts + 1) / (counts + 1).sum())
    assert float(probs.sum()) == pytest.approx(1, abs=1e-5)
    if cutoffs is None:  # exactly the frequencies
        assert torch.allclose(probs, expected, atol=1e-6)
    else:  # frequent tokens exactly; each rarer cluster gets its share as a whole
        assert torch.allclose(probs[:10], expected[:10], rtol=0.01)
        assert float(probs[10:20].sum()) == pytest.approx(float(expected[10:20].sum()), rel=0.01)
