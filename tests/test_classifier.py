import numpy as np
import pytest
import torch

from lessonlib.text.awd_lstm import AWDLSTM, AWDConfig
from lessonlib.text.classifier import (
    ChunkedEncoder,
    ClassifierConfig,
    PoolingHead,
    TextClassifier,
    classifier_from_lm,
    concat_pool,
    pooled_features,
    predict_logits,
)
from lessonlib.text.classifier_data import (
    ClassificationDataset,
    classification_loader,
)

PAD = 1




def tiny_encoder(vocab=30, d=8, seed=0):
    """A small AWD-LSTM, dropouts on, that records the length of every chunk it is called on."""
    torch.manual_seed(seed)
    enc = AWDLSTM(AWDConfig(vocab, emb_size=d, n_hid=12, n_layers=2, pad_id=PAD))
    enc.calls = []
    enc.register_forward_pre_hook(lambda m, args: m.calls.append(args[0].shape[1]))
    return enc


def one_pass(enc, tokens):
    enc.reset()
    with torch.no_grad():
        out = enc(tokens)
    enc.reset()
    return out


def test_concat_pool_ignores_padding_positions():
    torch.manual_seed(0)
    outputs = torch.randn(3, 6, 4)
    mask = torch.tensor([[1] * 6, [1] * 2 + [0] * 4, [0, 1, 1, 1, 0, 0]], dtype=torch.bool)
    last = torch.randn(3, 4)
    pooled = concat_pool(outputs, mask, last)
    garbage = outputs.clone()
    garbage[~mask] = 1e6 * torch.randn(int((~mask).sum()), 4)  # huge values where padding is
    assert torch.allclose(concat_pool(garbage, mask, last), pooled)
    for row in range(3):
        real = outputs[row][mask[row]]
        assert torch.allclose(pooled[row, 4:8], real.max(0).values)
        assert torch.allclose(pooled[row, 8:], real.mean(0))


def test_padding_never_changes_the_classifier_output():
    model = TextClassifier(tiny_encoder(), 8, PAD, ClassifierConfig(bptt=5, max_len=12)).eval()
    review = torch.randint(2, 30, (1, 17))
    alone = model(review)
    padded = torch.cat([review, torch.full((1, 23), PAD)], dim=1)
    other = torch.randint(2, 30, (1, 40))
    together = model(torch.cat([padded, other]))
    assert torch.allclose(together[0], alone[0], atol=1e-6)


def test_chunked_encoder_keeps_only_the_last_max_len_tokens_and_runs_every_chunk():
    enc = tiny_encoder().eval()
    chunked = ChunkedEncoder(enc, pad_idx=PAD, bptt=10, max_len=25)
    tokens = torch.randint(2, 30, (2, 103))
    tokens[1, 60:] = PAD
    outputs, mask, last = chunked(tokens)
    assert sum(enc.calls) == 103 and max(enc.calls) == 10  # all of it, 10 at a time
    assert mask.sum(1).tolist() == [25, 25]
    full = one_pass(enc, tokens)  # one pass over everything gives the same numbers
    assert torch.allclose(last[0], full[0, 102], atol=1e-5)
    assert torch.allclose(last[1], full[1, 59], atol=1e-5)
    assert torch.allclose(outputs[0][mask[0]], full[0, 78:103], atol=1e-5)
    assert torch.allclose(outputs[1][mask[1]], full[1, 35:60], atol=1e-5)
    assert outputs.shape[1] <= 103 - 60 + 25 + 10  # the window, widened to whole chunks


def test_early_chunks_carry_no_gradient():
    model = TextClassifier(tiny_encoder(), d=8, pad_idx=PAD, config=ClassifierConfig(bptt=10, max_len=10))
    tokens = torch.randint(2, 30, (2, 50))
    model(tokens).sum().backward()
    grad = model.encoder.embedding.weight.grad
    early_only = set(tokens[:, :40].flatten().tolist()) - set(tokens[:, 40:].flatten().tolist())
    assert early_only and all(grad[t].abs().sum() == 0 for t in early_only)
    assert grad[tokens[0, -1]].abs().sum() > 0


def test_a_100_000_token_review_is_read_in_chunks():
    torch.manual_seed(0)
    enc = AWDLSTM(AWDConfig(30, emb_size=4, n_hid=4, n_layers=1, pad_id=PAD))
    model = TextClassifier(enc, d=4, pad_idx=PAD, config=ClassifierConfig(bptt=5000, max_len=100)).eval()
    with torch.no_grad():
        scores = model(torch.randint(2, 30, (1, 100_000)))
    assert scores.shape == (1, 2) and torch.isfinite(scores).all()


def test_all_padding_row_fails_clearly():
    model = TextClassifier(tiny_encoder(), d=8, pad_idx=PAD)
    with pytest.raises(ValueError, match="all padding"):
        model(torch.tensor([[5, 6], [PAD, PAD]]))


def test_pooling_head_shapes_and_layers():
    head = PoolingHead(d=8, n_classes=3, hidden=5).eval()
    outputs, last = torch.randn(4, 7, 8), torch.randn(4, 8)
    out = head(outputs, torch.ones(4, 7, dtype=torch.bool), last)
    assert out.shape == (4, 3)
    # padding positions are left out of the pooling: changing them changes nothing
    mask = torch.ones(4, 7, dtype=torch.bool)
    mask[:, 5:] = False
    changed = outputs.clone()
    changed[:, 5:] = 100.0
    assert torch.allclose(head(outputs, mask, last), head(changed, mask, last))


def test_layer_groups_end_with_the_head():
    model = TextClassifier(tiny_encoder(), d=8, pad_idx=PAD)
    groups = model.layer_groups()
    assert groups[-1] is model.head
    n_params = sum(p.numel() for g in groups for p in g.parameters())
    assert n_params == sum(p.numel() for p in model.parameters())


def test_classifier_from_lm_copies_the_encoder_or_starts_fresh(tmp_path, saved_lm_encoder):
    path, enc = saved_lm_encoder(tmp_path)
    lm = classifier_from_lm(path, ClassifierConfig(drop_mult=0.5), pretrained=True)
    scratch = classifier_from_lm(path, ClassifierConfig(drop_mult=0.5), pretrained=False)
    w = enc.embedding.weight
    assert torch.equal(lm.encoder.embedding.weight, w)
    assert not torch.equal(scratch.encoder.embedding.weight, w)
    assert scratch.encoder.config == lm.encoder.config
    assert lm.encoder.config.drop_mult == 0.5 and lm.vocab.itos == enc_vocab_itos(path)
    assert len(lm.layer_groups()) == 2 + 2  # embedding, 2 LSTM layers, head


def enc_vocab_itos(path):
    return torch.load(path, weights_only=True)["itos"]


def test_classifier_from_lm_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="04_imdb_language_model"):
        classifier_from_lm(tmp_path / "nope.pt")


def test_predict_gives_a_label_and_its_probability(tmp_path, saved_lm_encoder):
    model = classifier_from_lm(saved_lm_encoder(tmp_path)[0])
    label, prob = model.predict("The movie was great fun!")
    assert label in ("neg", "pos") and 0.5 <= prob <= 1
    assert model.training  # predict leaves the mode as it found it


@pytest.mark.parametrize("text", ["", "   ", "zzyzx qwertyuiop flibbertigibbet", "ZZYZX!!!!"])
def test_predict_refuses_text_without_a_known_word(tmp_path, text, saved_lm_encoder):
    model = classifier_from_lm(saved_lm_encoder(tmp_path)[0])
    with pytest.raises(ValueError, match="nothing to classify"):
        model.predict(text)


def test_predict_without_vocab_says_how_to_fix():
    with pytest.raises(ValueError, match="vocabulary"):
        TextClassifier(tiny_encoder(), d=8, pad_idx=PAD).predict("good")


def test_pooled_features_match_the_model_input_in_dataset_order(random_reviews):
    enc = tiny_encoder()
    ds = ClassificationDataset(random_reviews(5, high=30), [0, 1, 0, 1, 0])
    feats = pooled_features(enc, ds, PAD, bs=2, config=ClassifierConfig(bptt=7))
    assert feats.shape == (5, 24) and enc.training
    one = ChunkedEncoder(enc.eval(), PAD, bptt=7, max_len=1400)(torch.as_tensor(ds[3][0])[None])
    assert np.allclose(feats[3], concat_pool(*one)[0].detach().numpy(), atol=1e-5)


def test_saved_classifier_predicts_like_the_original(tmp_path, saved_lm_encoder):
    from lessonlib.text.classifier import classifier_path, load_classifier, save_classifier

    path, _ = saved_lm_encoder(tmp_path)
    model = classifier_from_lm(path).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    saved = save_classifier(classifier_path(tmp_path / "clf" / "lm.pt"), model, path)
    assert saved.name == "lm_classifier.pt"
    again = load_classifier(saved)
    for text in ["great great fun", "boring"]:
        assert again.predict(text) == pytest.approx(model.predict(text))
    with pytest.raises(FileNotFoundError, match="05_imdb_classifier"):
        load_classifier(tmp_path / "missing.pt")


def test_a_saved_classifier_keeps_its_config(tmp_path, saved_lm_encoder):
    from lessonlib.text.classifier import load_classifier, save_classifier

    path, _ = saved_lm_encoder(tmp_path)
    config = ClassifierConfig(drop_mult=0.3, bptt=9, max_len=50)
    again = load_classifier(save_classifier(tmp_path / "clf.pt", classifier_from_lm(path, config), path))
    assert again.config == config and (again.chunked.bptt, again.chunked.max_len) == (9, 50)


def test_a_saved_classifier_moves_with_its_lm(tmp_path, saved_lm_encoder):
    import shutil

    from lessonlib.text.classifier import classifier_path, load_classifier, save_classifier

    path, _ = saved_lm_encoder(tmp_path / "data")
    model = classifier_from_lm(path).eval()
    save_classifier(classifier_path(path), model, path)
    shutil.move(tmp_path / "data", tmp_path / "moved")  # a new LESSONLIB_DATA
    again = load_classifier(tmp_path / "moved" / classifier_path(path).name)
    assert again.predict("great fun") == pytest.approx(model.predict("great fun"))


def test_a_broken_classifier_file_names_itself_and_notebook_05(tmp_path):
    from lessonlib.text.classifier import load_classifier
    from lessonlib.text.saved import SavedModelError

    broken = tmp_path / "lm_classifier.pt"
    broken.write_bytes(b"half a file")
    with pytest.raises(SavedModelError, match=r"lm_classifier.pt is not a readable saved classifier.*05"):
        load_classifier(broken)


def test_predict_divides_by_the_temperature_for_the_text_length(tmp_path, saved_lm_encoder):
    from lessonlib.calibration import LengthTemperatures

    model = classifier_from_lm(saved_lm_encoder(tmp_path)[0]).eval()
    with torch.no_grad():
        model.head.layers[-1].bias.copy_(torch.tensor([-4.0, 4.0]))  # raw: sure of 'pos'
    raw_short, raw_long = model.predict("great"), model.predict("the movie was great fun " * 4)
    model.temperatures = LengthTemperatures((2, 10), (100.0, 1.0))
    short, long = model.predict("great"), model.predict("the movie was great fun " * 4)
    assert short[0] == raw_short[0] and 0.5 <= short[1] < 0.55 < raw_short[1]  # same label, less sure
    assert long == pytest.approx(raw_long)  # 21 tokens: temperature 1


def test_a_saved_classifier_keeps_its_temperatures(tmp_path, saved_lm_encoder):
    from lessonlib.calibration import LengthTemperatures
    from lessonlib.text.classifier import classifier_path, load_classifier, save_classifier

    path, _ = saved_lm_encoder(tmp_path)
    model = classifier_from_lm(path).eval()
    assert load_classifier(save_classifier(classifier_path(path), model, path)).temperatures is None
    model.temperatures = LengthTemperatures((2, 33), (6.5, 1.25))
    again = load_classifier(save_classifier(classifier_path(path), model, path))
    assert again.temperatures == model.temperatures
    assert again.predict("great") == pytest.approx(model.predict("great"))


def test_predict_logits_pairs_rows_with_their_reviews_under_a_shuffling_loader(tmp_path, random_reviews,
                                                                               saved_lm_encoder):
    model = classifier_from_lm(saved_lm_encoder(tmp_path)[0]).eval()
    reviews = random_reviews(24, seed=5, high=40)
    data = ClassificationDataset([np.clip(r, 4, 14) for r in reviews], np.arange(24) % 2)
    shuffled = classification_loader(data, 4, model.vocab.pad_id, train=True, seed=3, bucket=2)
    logits, targets, index = predict_logits(model, shuffled)
    assert sorted(index.tolist()) == list(range(24))
    assert torch.equal(targets, torch.as_tensor(data.labels[index]))
    with torch.no_grad():
        alone = torch.cat([model(torch.as_tensor(data.ids[i])[None]) for i in index])
    assert torch.allclose(logits, alone, atol=1e-5)


def test_predict_refuses_text_that_is_not_valid_unicode(tmp_path, saved_lm_encoder):
    model = classifier_from_lm(saved_lm_encoder(tmp_path)[0])
    with pytest.raises(ValueError, match="not valid Unicode.*position 0"):
        model.predict("\ud800 broken")  # a lone surrogate, as a bad decode leaves it
