"""SmallPDropout: the same distribution as nn.Dropout, drawn from the dropped positions only."""

import pytest
import torch

from lessonlib.layers.small_p_dropout import SmallPDropout, bernoulli_positions


def test_bernoulli_positions_are_independent_coin_flips():
    torch.manual_seed(0)
    n, p, draws = 40, 0.3, 5000
    hits = torch.zeros(draws, n)
    for i in range(draws):
        idx = bernoulli_positions(n, p)
        assert torch.all(idx[1:] > idx[:-1]) and (len(idx) == 0 or (idx[0] >= 0 and idx[-1] < n))
        hits[i, idx] = 1
    rate = hits.mean(0)  # every position dropped with probability p: 0.3 +- 4 standard errors
    assert (rate - p).abs().max() < 4 * (p * (1 - p) / draws) ** 0.5
    counts = hits.sum(1)  # the number dropped is Binomial(n, p): its variance n p (1 - p) = 8.4
    assert abs(counts.var().item() - n * p * (1 - p)) < 0.6
    pairs = (hits[:, 0] * hits[:, 1]).mean().item()  # neighbours independent: P(both) = p ** 2
    assert abs(pairs - p * p) < 4 * (p * p * (1 - p * p) / draws) ** 0.5
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        bernoulli_positions(10, 0.0)


def test_bernoulli_positions_reach_past_the_first_block():
    torch.manual_seed(5)  # blocks of 2 gaps: most draws need many blocks to cover 50 positions
    counts = torch.tensor([len(bernoulli_positions(50, 0.2, block=2)) for _ in range(2000)],
                          dtype=torch.float)
    assert abs(counts.mean().item() - 10) < 4 * (50 * 0.2 * 0.8 / 2000) ** 0.5


@pytest.mark.parametrize("p", [0.001, 0.04])
def test_drop_rate_scaling_and_mean_match_inverted_dropout(p):
    torch.manual_seed(1)
    layer = SmallPDropout(p).train()
    x = torch.rand(256, 400) + 0.5  # no zeros, so a zero in the output is a dropped activation
    outs = torch.stack([layer(x) for _ in range(20)])
    dropped = (outs == 0).double().mean().item()
    n = outs.numel()
    assert abs(dropped - p) < 4 * (p * (1 - p) / n) ** 0.5
    kept = outs != 0
    torch.testing.assert_close(outs[kept], (x / (1 - p)).expand_as(outs)[kept])
    assert abs((outs / x).mean().item() - 1) < 4 * (p / (1 - p) / n) ** 0.5


def test_eval_is_identity_and_gradients_skip_dropped_positions():
    layer = SmallPDropout(0.05)
    x = torch.rand(64, 32, requires_grad=True)
    assert layer.eval()(x) is x
    torch.manual_seed(2)
    out = layer.train()(x + 1)  # inputs >= 1: zeros are exactly the dropped positions
    out.sum().backward()
    torch.testing.assert_close(x.grad, (out != 0).float() / 0.95)


def test_large_p_falls_back_to_a_dense_mask_and_bad_p_is_refused():
    torch.manual_seed(3)
    out = SmallPDropout(0.5).train()(torch.ones(100_000))
    assert abs((out == 0).float().mean().item() - 0.5) < 0.01
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        SmallPDropout(1.0)


def test_non_contiguous_input():
    torch.manual_seed(4)
    x = (torch.rand(40, 30) + 1).t()
    out = SmallPDropout(0.05).train()(x)
    assert out.shape == x.shape
    kept = out != 0
    torch.testing.assert_close(out[kept], (x / 0.95)[kept])
