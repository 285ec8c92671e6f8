"""Entity-embedding model, size rules, exp-RMSPE and the index-based loader."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lessonlib.layers.onednn_linear import OneDNNLinear
from lessonlib.layers.small_p_dropout import SmallPDropout
from lessonlib.tabular.model import (
    ScaledCapped,
    TabularConfig,
    TabularModel,
    batch_exp_rmspe,
    emb_size_fastai2,
    emb_size_lesson,
    emb_sizes,
    embedding_weights,
    exp_rmspe,
    log_ceilings,
    rmspe_log_scale,
    y_range_for,
)


def test_lesson_rule_is_half_the_codes_capped_at_50():
    assert [emb_size_lesson(c) for c in (2, 8, 99, 1116)] == [1, 4, 50, 50]


def test_fastai2_rule_grows_slower_and_caps_at_600():
    assert [emb_size_fastai2(c) for c in (2, 8, 1116, 10**6)] == [2, 5, 81, 600]


def test_emb_sizes_applies_the_named_rule_or_a_callable():
    assert emb_sizes([8, 1116], "fastai2") == [5, 81]
    assert emb_sizes([8, 1116]) == [4, 50]
    assert emb_sizes([8, 1116], lambda c: 3) == [3, 3]


def test_model_shapes_and_output_range(batch):
    model = TabularModel([5, 3], 2, TabularConfig(layers=(16, 8), ps=(0.1, 0.1)), y_range=(0.0, 2.0)).eval()
    out = model(batch())
    assert out.shape == (8,) and (out >= 0).all() and (out <= 2).all()
    assert model.n_inputs == emb_size_lesson(5) + emb_size_lesson(3) + 2


def test_one_hot_variant_is_the_network_on_explicit_one_hot_vectors(batch):
    """The one-hot network's first layer is nn.Linear on [one-hot codes, scaled continuous inputs]."""
    torch.manual_seed(0)
    model = TabularModel([5, 3], 2, TabularConfig(layers=(4,), ps=(0.0,), one_hot=True)).eval()
    assert model.n_inputs == 5 + 3 + 2 and len(model.embeds) == 0
    cats, conts = batch()
    first = model.one_hot_input
    hot = [F.one_hot(cats[:, 0], 5), F.one_hot(cats[:, 1], 3)]
    explicit = torch.cat([*hot, model.bn_cont(conts)], 1).float()
    hidden = model.layers(F.linear(explicit, first.weight, first.bias))
    torch.testing.assert_close(model((cats, conts)), model.head(hidden).squeeze(1))


def test_model_learns_a_category_effect(batch):
    torch.manual_seed(0)
    cats, conts = batch(n=256, cards=(4,), n_cont=1, seed=1)
    y = torch.tensor([1.0, 2.0, 3.0, 4.0])[cats[:, 0]]
    model = TabularModel([4], 1, TabularConfig(layers=(16,), ps=(0.0,), emb_drop=0.0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    for _ in range(100):
        loss = torch.nn.functional.mse_loss(model((cats, conts)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


def test_model_rejects_wrong_inputs(batch):
    with pytest.raises(ValueError, match="dropout"):
        TabularModel([5], 1, TabularConfig(layers=(4, 4), ps=(0.1,)))
    with pytest.raises(ValueError, match="categorical columns"):
        TabularModel([5], 2)(batch(cards=(5, 3)))


def test_batch_exp_rmspe_averages_per_batch_rmspe_like_fastai_0_7():
    y = torch.tensor([100.0, 100.0, 100.0, 200.0])
    pred = torch.tensor([110.0, 100.0, 100.0, 100.0])  # errors 10%, 0, 0, 50%
    got = batch_exp_rmspe(pred.log(), y.log(), batch_size=3)
    expected = (3 * math.sqrt(0.01 / 3) + 1 * 0.5) / 4  # batches [0:3] and [3:4], weighted by size
    assert got == pytest.approx(expected)
    whole = exp_rmspe(pred.log(), y.log()).item()
    assert got < whole  # one bad row weighs less when it is averaged per batch
    assert batch_exp_rmspe(pred.log(), y.log(), batch_size=4) == pytest.approx(whole)
    with pytest.raises(ValueError, match="batch_size"):
        batch_exp_rmspe(pred.log(), y.log(), batch_size=0)


def test_exp_rmspe_is_on_sales_not_logs():
    y = torch.tensor([100.0, 200.0])
    pred = torch.tensor([110.0, 180.0])
    expected = math.sqrt(((10 / 100) ** 2 + (20 / 200) ** 2) / 2)
    assert exp_rmspe(pred.log(), y.log()).item() == pytest.approx(expected)
    assert exp_rmspe(y.log(), y.log()).item() == 0
    with pytest.raises(ValueError, match="shape"):
        exp_rmspe(y.log(), y[:1].log())


def test_y_range_is_a_little_wider_than_targets():
    lo, hi = y_range_for(np.log([100.0, 5000.0]))
    assert lo == 0 and hi == pytest.approx(1.2 * np.log(5000))


def test_y_init_starts_predictions_at_the_given_value(batch):
    model = TabularModel([5, 3], 2, TabularConfig(layers=(16,), ps=(0.0,)), y_range=(0.0, 12.0),
                         y_init=8.5).eval()
    out = model(batch(n=64))
    assert (out - 8.5).abs().max() < 0.5
    with pytest.raises(ValueError, match="inside y_range"):
        TabularModel([5], 1, y_range=(0.0, 1.0), y_init=3.0)


def test_output_stays_fp32_under_bf16_autocast(batch):
    """The hidden layers may run in bf16, the head and sigmoid must not: in bf16 a log-Sales output
    near 9 could only take values 1/16 apart."""
    torch.manual_seed(0)
    model = TabularModel([5, 3], 2, TabularConfig(layers=(16,), ps=(0.0,)), y_range=(0.0, 12.0),
                         y_init=9.0).eval()
    x = batch(n=256)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.dtype == torch.float32
    steps = torch.diff(out.unique())
    assert steps.min() < 1e-3  # not quantised to bf16's 1/16 grid
    assert (out - model(x)).abs().max() < 0.05  # the same function, hidden layers rounded


def test_plain_layers_by_default_fast_layers_on_request():
    plain = TabularModel([5, 3], 2, TabularConfig(layers=(8,), ps=(0.1,)))
    fast = TabularModel([5, 3], 2, TabularConfig(layers=(8,), ps=(0.1,), fast_layers=True))
    kinds = lambda m: {type(x) for x in m.modules()}  # noqa: E731
    assert {OneDNNLinear, SmallPDropout} & kinds(plain) == set() and nn.Dropout in kinds(plain)
    assert {OneDNNLinear, SmallPDropout} <= kinds(fast)


def test_fast_layers_compute_the_plain_network(batch):
    cfg = TabularConfig(layers=(16, 8), ps=(0.1, 0.1))
    plain = TabularModel([5, 3], 2, cfg, y_range=(0.0, 12.0)).eval()
    fast = TabularModel([5, 3], 2, replace(cfg, fast_layers=True), y_range=(0.0, 12.0)).eval()
    # the same parameters and buffers in the same order (the fast blocks have no separate ReLU module)
    fast.load_state_dict(dict(zip(fast.state_dict(), plain.state_dict().values(), strict=True)))
    x = batch(n=64)
    torch.testing.assert_close(fast(x), plain(x))


def test_embedding_weights_leave_out_the_unknown_row():
    model = TabularModel([5, 3], 2, TabularConfig(layers=(4,), ps=(0.1,)))
    weights = embedding_weights(model, ["a", "b"], "b")
    assert weights.shape == (2, model.embeds[1].weight.shape[1]) and weights.dtype == np.float64
    np.testing.assert_array_equal(weights, model.embeds[1].weight.detach().numpy()[1:])



def test_rmspe_log_scale_is_the_rmspe_optimal_factor():
    targ = torch.log(torch.tensor([100.0, 100.0, 200.0]))
    assert rmspe_log_scale(targ, targ) == pytest.approx(0.0, abs=1e-12)  # exact predictions: c = 1
    pred = targ + torch.log(torch.tensor([2.0, 0.5, 1.0]))  # r = 2, 0.5, 1
    shift = rmspe_log_scale(pred, targ)
    assert math.exp(shift) == pytest.approx(3.5 / 5.25)  # sum(r) / sum(r^2)
    best = exp_rmspe(pred + shift, targ)
    for other in (shift - 0.01, shift + 0.01, 0.0):
        assert best < exp_rmspe(pred + other, targ)
    assert rmspe_log_scale(pred.numpy().tolist(), targ.numpy()) == pytest.approx(shift)  # any array-like


def test_calibrated_shifts_the_output_and_saves_the_shift(batch):
    net = TabularModel([5, 3], 2, TabularConfig(layers=(8,), ps=(0.0,)), y_range=(0.0, 12.0),
                       y_init=8.5).eval()
    x = batch()
    model = ScaledCapped(net, log_scale=-0.25).eval()
    torch.testing.assert_close(model(x), net(x) - 0.25)
    again = ScaledCapped(net)
    again.load_state_dict(model.state_dict())
    assert again.log_scale.item() == -0.25


def test_log_ceilings_per_code_with_margin():
    codes = torch.tensor([1, 1, 2, 2, 2])
    log_y = torch.tensor([5.0, 7.0, 6.0, 4.0, 6.5])
    got = log_ceilings(codes, log_y, n_codes=4, margin=0.2)
    # code 0 (unknown) and code 3 have no rows: the overall largest
    torch.testing.assert_close(got, torch.tensor([7.2, 7.2, 6.7, 7.2]))
    with pytest.raises(ValueError, match="codes for"):
        log_ceilings(codes[:2], log_y, n_codes=4)


def test_calibrated_caps_outputs_by_the_row_code():
    torch.manual_seed(0)
    net = TabularModel([3, 4], 1, TabularConfig(layers=(8,), ps=(0.0,)), sizes=[2, 2],
                       y_range=(0.0, 20.0)).eval()
    cats = torch.tensor([[1, 1], [1, 2], [2, 3], [0, 0]])
    x = (cats, torch.zeros(4, 1))
    model = ScaledCapped(net, cap_input=1, log_cap=[0.5, 100.0, 1.0, 100.0])
    torch.testing.assert_close(model(x), torch.minimum(net(x), torch.tensor([100.0, 1.0, 100.0, 0.5])))
    assert "log_cap" in model.state_dict() and ScaledCapped(net).log_cap is None
    with pytest.raises(ValueError, match="both cap_input and log_cap"):
        ScaledCapped(net, cap_input=1)
