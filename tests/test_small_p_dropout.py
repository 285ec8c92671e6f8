"""SmallPDropout: the same distribution as nn.Dropout, drawn from the dropped positions only."""

import pytest
import torch

from lessonlib.small_p_dropout import SmallPDropout, random_subset


def test_random_subset_is_distinct_and_covers_positions_evenly():
    torch.manual_seed(0)
    idx = random_subset(50, 40)
    assert len(idx) == 40 and len(idx.unique()) == 40 and 0 <= idx.min() and idx.max() < 50
    counts = torch.zeros(10)
    for _ in range(4000):
        counts[random_subset(10, 3)] += 1
    assert (counts / 4000 - 0.3).abs().max() < 0.03  # each position in 3 of 10: 0.3 +- 3 std errors
    with pytest.raises(ValueError, match="distinct"):
        random_subset(3, 4)


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
