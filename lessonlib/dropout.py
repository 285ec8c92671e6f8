"""Dropout, from scratch and measured: the mechanism, a one-hidden-layer network, the p-sweep over seeds,
and Monte Carlo dropout at inference.

    y = dropout(x, p=0.5)                       # inverted dropout: zero a share p, scale the rest by 1/(1-p)
    run = DropoutRun(TrainConfig(epochs=8, lr=3e-3, bs=250, precision="fp32"))
    hist = sweep(lambda p, hidden: MLP(n_in, hidden, p), data, {"p": [0, .5], "hidden": [16]}, seeds=[0, 1],
                 run=run)  # tidy DataFrame: one row per (p, hidden, seed, epoch)
    probs = mc_predict(model, dl, n_samples=50)  # (samples, rows, classes) with dropout left on
"""

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from lessonlib.bow import rows_loader
from lessonlib.core import eval_outputs, progress, seed_everything
from lessonlib.engine.callbacks import Callback
from lessonlib.engine.learner import Learner, accuracy
from lessonlib.engine.training import TrainConfig, build_learner
from lessonlib.layers.dropout_mask import check_p, dropout_mask


# ---- the mechanism ---------------------------------------------------------------------------------------
def dropout(x: torch.Tensor, p: float = 0.5, training: bool = True, mask: torch.Tensor | None = None,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Inverted dropout. In training, zero each activation with probability p and multiply the kept ones
    by 1/(1-p), so every activation keeps its expected value; outside training, return x unchanged.
    Pass `mask` (0/1, shaped like x) to choose which activations are kept."""
    p = check_p(p)
    if not training or p == 0:
        return x
    if mask is None:
        mask = dropout_mask(x.shape, p, generator, x.device)
    elif mask.shape != x.shape:
        raise ValueError(f"mask has shape {tuple(mask.shape)} but x has {tuple(x.shape)}: they must match")
    return x * mask.to(x.dtype) / (1 - p)


class Dropout(nn.Module):
    """`dropout` as a layer: active in `train()` mode, the identity in `eval()` mode."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = check_p(p)

    def forward(self, x):
        return dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


def mask_from_output(out: torch.Tensor) -> torch.Tensor:
    """The keep-mask a dropout layer used, read off its output on an input with no zeros."""
    return (out != 0).float()


def monte_carlo_mean(x: torch.Tensor, p: float, n_draws: int, seed: int = 0) -> tuple[float, float]:
    """Average of dropout(x)/x over n_draws fresh masks and all entries of x (which must be non-zero),
    with its standard error. Inverted dropout makes it 1 in expectation."""
    if n_draws < 2:
        raise ValueError(f"n_draws must be >= 2 to estimate a standard error, got {n_draws}")
    if (x == 0).any():
        raise ValueError("x must have no zeros: the ratio dropout(x)/x is undefined there")
    g = torch.Generator(device=x.device).manual_seed(seed)
    ratios = torch.stack([(dropout(x, p, generator=g) / x).mean() for _ in range(n_draws)]).double()
    return ratios.mean().item(), (ratios.std() / math.sqrt(n_draws)).item()


# ---- the network -----------------------------------------------------------------------------------------
class SparseInputLinear(nn.Module):
    """A linear layer whose input may be a torch sparse tensor (bag-of-words rows) or dense.
    The weight is stored (in, out) so the sparse product needs no transpose."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        bound = 1 / math.sqrt(n_in)  # nn.Linear's default init
        self.weight = nn.Parameter(torch.empty(n_in, n_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_out).uniform_(-bound, bound))

    def forward(self, x):
        if x.shape[-1] != self.weight.shape[0]:
            raise ValueError(f"input has {x.shape[-1]} features, the layer expects {self.weight.shape[0]}")
        out = torch.sparse.mm(x, self.weight) if x.layout != torch.strided else x @ self.weight
        return out + self.bias


class MLP(nn.Module):
    """features -> Linear -> ReLU -> Dropout(p) -> Linear -> logits (n_out of them).
    `output_relu=True` puts a ReLU on the logits too: the mistake section 5 of notebook 01 measures."""

    def __init__(self, n_in: int, n_hidden: int, p: float = 0.0, n_out: int = 2, output_relu: bool = False):
        super().__init__()
        if n_in < 1 or n_hidden < 1 or n_out < 1:
            raise ValueError(f"n_in, n_hidden and n_out must be >= 1, got {n_in}, {n_hidden}, {n_out}")
        self.hidden = SparseInputLinear(n_in, n_hidden)
        self.drop = nn.Dropout(check_p(p))
        self.out = nn.Linear(n_hidden, n_out)
        self.output_relu = output_relu

    def forward(self, x):
        logits = self.out(self.drop(F.relu(self.hidden(x))))
        return F.relu(logits) if self.output_relu else logits


def binary_logit_loss(pred, y):
    """Binary cross-entropy for a model with one output (the logit of class 1)."""
    return F.binary_cross_entropy_with_logits(pred.squeeze(-1), y.float())


def binary_logit_accuracy(pred, y):
    """Accuracy for a model with one output: class 1 when the logit is positive."""
    return ((pred.squeeze(-1) > 0).long() == y).float().mean()


# ---- training runs and the sweep -------------------------------------------------------------------------
class EvalTrainLoss(Callback):
    """Learner callback: after every epoch, measure the loss and accuracy on the training data again in
    eval mode (dropout off, weights as at the epoch's end); adds columns train_loss_eval, train_acc_eval."""

    def __init__(self, train_eval_dl):
        self.dl = train_eval_dl

    def after_epoch(self, learn):
        stats = learn.evaluate(self.dl)
        learn.recorder.log(train_loss_eval=stats["loss"],
                           **{f"train_{name}_eval": stats[name] for name in learn.metrics})


@dataclass(frozen=True)
class DropoutRun:
    """How one of notebook 01's networks trains (`train_run`, `sweep`): `train` (its bs None: the whole
    training set as one batch; notebook 01 trains in "fp32"), the schedule, loss and metrics."""

    train: TrainConfig
    schedule: str = "constant"             # the LR schedule (see lessonlib.engine.schedule)
    loss_func: Callable = F.cross_entropy
    metrics: dict | None = None            # None: {"acc": accuracy}
    dense_batches: bool = False            # see `rows_loader`


def train_run(model: nn.Module, data: Sequence, run: DropoutRun, seed: int = 0,
              show: bool = False) -> Learner:
    """Train `model` as `run` says through the Learner on data = (X_train, y_train, X_valid, y_valid),
    with the training loss re-measured in eval mode after every epoch (columns train_loss_eval,
    train_acc_eval of learn.history). The shuffling is seeded by `seed`; seed the model's init yourself
    before building it."""
    if len(data) != 4:
        raise ValueError("data must be (X_train, y_train, X_valid, y_valid)")
    X_train, y_train, X_valid, y_valid = data
    dense = run.dense_batches
    train_dl = rows_loader(X_train, y_train, run.train.bs, shuffle=True, seed=seed, dense_batches=dense)
    train_eval_dl = rows_loader(X_train, y_train, batch_size=1024, dense_batches=dense)
    valid_dl = rows_loader(X_valid, y_valid, batch_size=1024, dense_batches=dense)
    learn = build_learner(model, (train_dl, valid_dl), run.loss_func, run.train,
                          metrics=run.metrics or {"acc": accuracy}, callbacks=[EvalTrainLoss(train_eval_dl)])
    learn.fit(run.train.epochs, run.train.lr, schedule=run.schedule, show=show)
    return learn


def sweep(make_model: Callable[..., nn.Module], data: Sequence, grid: dict[str, Sequence],
          seeds: Sequence[int], run: DropoutRun, test: Sequence | None = None,
          models: dict | None = None) -> pd.DataFrame:
    """Train make_model(**params) as `run` says for every combination of the `grid` values and every seed.

    Returns a tidy DataFrame, one row per run and epoch: the grid columns, seed, epoch (from 1),
    train_loss (as reported during training, dropout on), train_loss_eval (eval mode, at the epoch's end),
    valid_loss, the metrics, seconds; with `test` = (X_test, y_test), test_loss and test_<metric> of
    the final model on every row of its run. Each run seeds everything with its seed first. Pass a dict
    as `models` to keep the trained models, keyed by (*grid values, seed)."""
    if not grid or any(len(v) == 0 for v in grid.values()):
        raise ValueError(f"grid must map each parameter name to a non-empty list of values, got {grid}")
    if len(seeds) == 0:
        raise ValueError("seeds must hold at least one seed")
    names = list(grid)
    combos = [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]
    frames = []
    for params in progress(combos, desc="sweep"):
        for seed in seeds:
            seed_everything(seed)
            learn = train_run(make_model(**params), data, run, seed=seed)
            hist = learn.history.copy()
            hist["epoch"] = hist["epoch"] + 1
            if test is not None:
                stats = learn.evaluate(rows_loader(*test, batch_size=1024))
                for k, v in stats.items():
                    hist[f"test_{k}"] = v
            frames.append(hist.assign(**params, seed=seed))
            if models is not None:
                models[(*params.values(), seed)] = learn.model
    out = pd.concat(frames, ignore_index=True)
    first = [*names, "seed", "epoch"]
    return out[first + [c for c in out.columns if c not in first]]


def run_summary(hist: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """One row per run (the `by` columns and seed): the last epoch's numbers, plus the best validation
    loss, the epoch it came at (best_epoch), and gap = valid_loss - train_loss_eval at the last epoch."""
    keys = [*by, "seed"]
    last = hist.sort_values("epoch").groupby(keys, sort=True).tail(1).set_index(keys).sort_index()
    best = hist.loc[hist.groupby(keys)["valid_loss"].idxmin()].set_index(keys).sort_index()
    last["best_valid_loss"] = best["valid_loss"]
    last["best_epoch"] = best["epoch"]
    last["gap"] = last["valid_loss"] - last["train_loss_eval"]
    return last.reset_index()


def mean_std(runs: pd.DataFrame, by: Sequence[str], columns: Sequence[str]) -> pd.DataFrame:
    """Mean and standard deviation over seeds of `columns`, per `by` group; columns named <col>_mean,
    <col>_std, plus n (the number of seeds)."""
    g = runs.groupby(list(by))
    out = g[list(columns)].agg(["mean", "std"])
    out.columns = [f"{c}_{stat}" for c, stat in out.columns]
    out["n"] = g.size()
    return out.reset_index()


# ---- Monte Carlo dropout ---------------------------------------------------------------------------------
def mc_predict(model: nn.Module, dl, n_samples: int = 50, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities from `n_samples` passes over `dl` with the dropout layers left on (the rest of
    the model in eval mode): returns (probs of shape (n_samples, rows, classes), targets)."""
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    drops = [m for m in model.modules() if isinstance(m, (nn.Dropout, Dropout))]
    if not drops:
        raise ValueError("the model has no dropout layer: Monte Carlo dropout needs one")
    samples = []
    with torch.random.fork_rng():  # `seed` draws the masks; the caller's generators (CPU, CUDA) are untouched
        torch.manual_seed(seed)
        for _ in range(n_samples):
            probs, targets = [], []
            for out, y in eval_outputs(model, dl, active=drops):
                probs.append(out.float().softmax(-1).cpu())
                targets.append(y.cpu())
            samples.append(torch.cat(probs))
    return torch.stack(samples), torch.cat(targets)


def uncertainty_table(probs: torch.Tensor, targets: torch.Tensor) -> pd.DataFrame:
    """Per row, from MC samples `probs` (samples, rows, classes): the mean-probability prediction,
    whether it is wrong, its confidence (max mean probability), and spread = the standard deviation over
    samples of the probability of the predicted class."""
    mean = probs.mean(0)
    conf, pred = mean.max(-1)
    spread = probs[:, torch.arange(len(pred)), pred].std(0) if len(probs) > 1 else torch.zeros(len(pred))
    return pd.DataFrame({"pred": pred.numpy(), "target": targets.numpy(),
                         "wrong": (pred != targets).numpy().astype(int), "confidence": conf.numpy(),
                         "spread": spread.numpy()})


def error_rate_by_bin(table: pd.DataFrame, column: str, n_bins: int = 5) -> pd.DataFrame:
    """Split rows into n_bins equal-count bins of `column` (lowest first); error rate per bin with its
    binomial standard error, and the bin's mean `column`."""
    if len(table) < n_bins:
        raise ValueError(f"need at least n_bins={n_bins} rows, got {len(table)}")
    order = np.argsort(table[column].to_numpy(), kind="stable")
    bins = np.empty(len(table), dtype=int)
    bins[order] = np.arange(len(table)) * n_bins // len(table)
    g = table.assign(bin=bins).groupby("bin")
    out = pd.DataFrame({column: g[column].mean(), "error_rate": g["wrong"].mean(), "n": g.size()})
    out["error_se"] = np.sqrt(out["error_rate"] * (1 - out["error_rate"]) / out["n"])
    return out.reset_index()
