import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lessonlib.bow import rows_loader
from lessonlib.dropout import (
    MLP,
    Dropout,
    DropoutRun,
    binary_logit_accuracy,
    binary_logit_loss,
    dropout,
    error_rate_by_bin,
    mask_from_output,
    mc_predict,
    mean_std,
    monte_carlo_mean,
    run_summary,
    sweep,
    train_run,
    uncertainty_table,
)
from lessonlib.engine.training import TrainConfig


def nonzero_input(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    return torch.where(x == 0, torch.ones_like(x), x)


# ---- the mechanism ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_same_mask_gives_the_same_output_as_torch(p):
    x = nonzero_input((64, 32))
    torch.manual_seed(1)
    expected = nn.Dropout(p).train()(x)
    mask = mask_from_output(expected)
    assert 0 < mask.mean() < 1
    assert torch.allclose(dropout(x, p, mask=mask), expected)


@pytest.mark.parametrize("p", [0.25, 0.75])
def test_kept_activations_are_scaled_by_one_over_keep_probability(p):
    x = nonzero_input((100, 100))
    out = dropout(x, p, generator=torch.Generator().manual_seed(0))
    kept = out != 0
    assert torch.allclose(out[kept], x[kept] / (1 - p))
    # share kept is 1-p up to 5 binomial standard errors
    assert abs(kept.float().mean().item() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / x.numel())


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_expected_activation_is_unchanged(p):
    mean, se = monte_carlo_mean(nonzero_input((16, 16)), p, n_draws=400, seed=2)
    assert 0 < se < 0.05
    assert abs(mean - 1) < 4 * se
    # without the 1/(1-p) rescale the mean would be 1-p: many standard errors away
    assert abs(mean - (1 - p)) > 10 * se


def test_eval_mode_drops_nothing():
    x = nonzero_input((8, 8))
    layer = Dropout(0.5)
    assert not torch.equal(layer.train()(x), x)
    assert torch.equal(layer.eval()(x), x)
    assert torch.equal(dropout(x, 0.5, training=False), x)
    assert torch.equal(dropout(x, 0.0), x)


def test_bad_p_and_mask_are_explained():
    for p in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="p must be in"):
            dropout(torch.ones(2), p)
    with pytest.raises(ValueError, match="shape"):
        dropout(torch.ones(2, 3), 0.5, mask=torch.ones(3, 2))
    with pytest.raises(ValueError, match="zeros"):
        monte_carlo_mean(torch.zeros(3), 0.5, 10)


# ---- the network ------------------------------------------------------------------------------------------
def test_mlp_takes_sparse_or_dense_rows_and_can_put_relu_on_logits():
    torch.manual_seed(0)
    x = (torch.rand(6, 12) < 0.3).float()
    model = MLP(12, 5, p=0.5).eval()
    assert torch.allclose(model(x.to_sparse_csr()), model(x), atol=1e-6)
    model.output_relu = True
    assert (model(x) >= 0).all()
    with pytest.raises(ValueError, match="features"):
        model(torch.ones(2, 11))


def test_binary_logit_loss_and_accuracy():
    pred, y = torch.tensor([[2.0], [-1.0], [0.5]]), torch.tensor([1, 1, 0])
    assert binary_logit_accuracy(pred, y).item() == pytest.approx(1 / 3)
    assert binary_logit_loss(pred, y).item() == pytest.approx(
        F.binary_cross_entropy_with_logits(pred.flatten(), y.float()).item())


# ---- training runs and the sweep --------------------------------------------------------------------------
def toy_data(n=120, d=30, seed=0):
    """Binary rows whose label is whether feature 0 or 1 is present more than features 2 and 3."""
    g = torch.Generator().manual_seed(seed)
    X = (torch.rand(n, d, generator=g) < 0.2).float()
    y = ((X[:, 0] + X[:, 1]) > (X[:, 2] + X[:, 3])).long()
    return X[: n // 2].to_sparse_csr(), y[: n // 2], X[n // 2:], y[n // 2:]


def test_train_run_remeasures_the_training_loss_in_eval_mode():
    data = toy_data()
    torch.manual_seed(0)
    model = MLP(30, 8, p=0.5)
    learn = train_run(model, data, DropoutRun(TrainConfig(epochs=3, lr=1e-2, bs=20)), seed=0)
    hist = learn.history
    assert list(hist.columns[:3]) == ["epoch", "train_loss", "valid_loss"]
    assert hist["train_loss_eval"].notna().all() and hist["train_acc_eval"].between(0, 1).all()
    model.eval()
    with torch.no_grad():
        manual = F.cross_entropy(model(data[0]), data[1]).item()
    assert hist["train_loss_eval"].iloc[-1] == pytest.approx(manual, rel=1e-5)
    assert (hist["train_loss"] != hist["train_loss_eval"]).all()


def test_sweep_is_tidy_and_reproducible():
    data, test = toy_data(), toy_data(seed=1)[2:]
    kw = dict(data=data, grid={"p": [0.0, 0.5], "hidden": [4]}, seeds=[0, 1],
              run=DropoutRun(TrainConfig(epochs=2, lr=1e-2, bs=30)), test=test)
    make = lambda p, hidden: MLP(30, hidden, p)
    models = {}
    hist = sweep(make, models=models, **kw)
    assert sorted(models) == [(0.0, 4, 0), (0.0, 4, 1), (0.5, 4, 0), (0.5, 4, 1)]
    assert list(hist.columns[:4]) == ["p", "hidden", "seed", "epoch"]
    assert len(hist) == 2 * 2 * 2 and sorted(hist["epoch"].unique()) == [1, 2]
    for col in ["train_loss", "train_loss_eval", "valid_loss", "acc", "test_loss", "test_acc"]:
        assert hist[col].notna().all(), col
    assert (hist.groupby(["p", "seed"])["test_loss"].nunique() == 1).all()  # one test figure per run
    pd.testing.assert_frame_equal(hist.drop(columns="seconds"), sweep(make, **kw).drop(columns="seconds"))
    s0, s1 = (hist[(hist.seed == s) & (hist.p == 0.5)]["valid_loss"].to_numpy() for s in (0, 1))
    assert (s0 != s1).any()  # seeds really differ


def test_sweep_checks_its_grid():
    with pytest.raises(ValueError, match="grid"):
        sweep(MLP, toy_data(), {"p": []}, seeds=[0], run=DropoutRun(TrainConfig(epochs=1, lr=1e-2, bs=None)))
    with pytest.raises(ValueError, match="seed"):
        sweep(MLP, toy_data(), {"p": [0]}, seeds=[], run=DropoutRun(TrainConfig(epochs=1, lr=1e-2, bs=None)))


def test_run_summary_and_mean_std():
    hist = pd.DataFrame({
        "p": [0.0] * 6, "seed": [0, 0, 0, 1, 1, 1], "epoch": [1, 2, 3] * 2,
        "train_loss_eval": [0.5, 0.3, 0.1, 0.6, 0.4, 0.2],
        "valid_loss": [0.7, 0.5, 0.6, 0.8, 0.7, 0.65], "acc": [0.6, 0.7, 0.7, 0.5, 0.6, 0.65]})
    runs = run_summary(hist, ["p"])
    assert runs["best_epoch"].tolist() == [2, 3]
    assert runs["best_valid_loss"].tolist() == [0.5, 0.65]
    assert runs["gap"].tolist() == pytest.approx([0.5, 0.45])
    agg = mean_std(runs, ["p"], ["gap"])
    assert agg["gap_mean"].item() == pytest.approx(0.475)
    assert agg["gap_std"].item() == pytest.approx(pd.Series([0.5, 0.45]).std())
    assert agg["n"].item() == 2


# ---- Monte Carlo dropout ----------------------------------------------------------------------------------
def test_mc_predict_keeps_dropout_on_and_restores_the_mode():
    X, y, *_ = toy_data()
    torch.manual_seed(0)
    model = MLP(30, 16, p=0.5).eval()
    probs, targets = mc_predict(model, rows_loader(X, y, batch_size=16), n_samples=5, seed=0)
    assert probs.shape == (5, 60, 2) and torch.equal(targets, y)
    assert torch.allclose(probs.sum(-1), torch.ones(5, 60))
    assert (probs.std(0) > 0).any()  # passes differ: dropout was on
    assert not model.training
    again, _ = mc_predict(model, rows_loader(X, y, batch_size=16), n_samples=5, seed=0)
    assert torch.equal(probs, again)
    with pytest.raises(ValueError, match="no dropout"):
        mc_predict(nn.Linear(30, 2), rows_loader(X.to_dense(), y), 2)


def test_uncertainty_table_and_error_rate_by_bin():
    # 2 samples, 3 rows: row 0 confident and right, row 1 unsure and wrong, row 2 unsure and right
    probs = torch.tensor([[[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]],
                          [[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]]])
    table = uncertainty_table(probs, torch.tensor([0, 0, 1]))
    assert table["pred"].tolist() == [0, 1, 1] and table["wrong"].tolist() == [0, 1, 0]
    assert table["confidence"].iloc[0] == pytest.approx(0.9)
    assert table["spread"].iloc[0] == pytest.approx(0.0)
    assert table["spread"].iloc[1] == pytest.approx(torch.tensor([0.8, 0.4]).std().item())
    rates = error_rate_by_bin(pd.DataFrame({"spread": [0.1, 0.2, 0.3, 0.4], "wrong": [0, 0, 1, 0]}),
                              "spread", n_bins=2)
    assert rates["error_rate"].tolist() == [0.0, 0.5] and rates["n"].tolist() == [2, 2]
    assert rates["error_se"].tolist() == pytest.approx([0.0, 0.5 / math.sqrt(2)])
    with pytest.raises(ValueError, match="n_bins"):
        error_rate_by_bin(table, "spread", n_bins=10)


def test_mc_predict_leaves_the_global_rng_as_it_was():
    X, y, *_ = toy_data()
    torch.manual_seed(123)
    model, dl = MLP(30, 16, p=0.5), rows_loader(X, y, batch_size=16)
    state = torch.get_rng_state()
    mc_predict(model, dl, n_samples=2, seed=0)
    assert torch.equal(state, torch.get_rng_state())  # its seed draws its own masks, not the caller's
