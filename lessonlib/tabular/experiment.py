"""One Rossmann training run: processor-coded loaders, the entity-embedding model, the shared Learner,
and exp-RMSPE on the validation rows; `sales_job`, the same run in a worker process of `run_parallel`.
Used by notebooks 03 and 06 and benchmarks/rossmann.py."""

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from lessonlib.core import seed_everything
from lessonlib.data import rossmann
from lessonlib.engine.learner import Learner
from lessonlib.engine.training import TrainConfig, build_learner
from lessonlib.tabular import features
from lessonlib.tabular.loader import TensorLoader, frame_loader
from lessonlib.tabular.model import (
    LESSON_VALID_BS,
    ScaledCapped,
    TabularConfig,
    TabularModel,
    batch_exp_rmspe,
    exp_rmspe,
    log_ceilings,
    rmspe_log_scale,
    y_range_for,
)
from lessonlib.tabular.preprocess import TabularProcessor


@dataclass(frozen=True, kw_only=True)
class SalesConfig:
    """One Rossmann run: the network's shape, how it trains, and how its predictions are finished.
    `dataclasses.replace(cfg, model=replace(cfg.model, one_hot=True))` makes a variant."""

    model: TabularConfig = TabularConfig()
    train: TrainConfig                     # clip 1.0 keeps rare inputs off the sigmoid's ceiling (see
                                           # fit_sales_model); precision "auto": fp32 on a CPU
    cap_by: str | None = "Store"           # cap predictions per value of this column (None: no cap)
    rmspe_scale: bool = True               # the RMSPE-optimal output factor, fitted on training rows


@dataclass
class Run:
    learn: Learner        # learn.model: the trained network
    model: ScaledCapped     # the network with its output factor and cap: what predicts
    proc: TabularProcessor
    rmspe: float          # exp-RMSPE on the validation rows
    seconds: float        # wall time of learn.fit

    def predict(self, dl) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-Sales predictions of `model`, targets) for a loader of ((cats, conts), y) batches."""
        return self.learn.get_preds(dl, model=self.model)


def sales_learner(train: pd.DataFrame, valid: pd.DataFrame, proc: TabularProcessor, cfg: SalesConfig,
                  seed: int = 42, device=None) -> Learner:
    """The untrained network of `cfg` in a Learner over the processor-coded rows, the training rows
    shuffled with `seed`: what `fit_sales_model` trains, and what to run the LR finder on before
    choosing the LR. The weights start from torch's RNG: seed it first (`seed_everything`)."""
    train_dl = frame_loader(proc, train, batch_size=cfg.train.bs, shuffle=True, seed=seed)
    valid_dl = frame_loader(proc, valid, batch_size=4096)
    log_y = np.log(train["Sales"].to_numpy())
    net = TabularModel(proc.cardinalities, len(proc.cont_names), cfg.model, y_range=y_range_for(log_y),
                       y_init=float(log_y.mean()))
    return build_learner(net, (train_dl, valid_dl), F.mse_loss, cfg.train, device=device)


def fit_sales_model(train: pd.DataFrame, valid: pd.DataFrame, proc: TabularProcessor, cfg: SalesConfig,
                    seed: int = 42, show: bool = True, device=None) -> Run:
    """Seed torch with `seed`, fit the processing `proc` on `train` (unless it is fitted already), train
    the network on log(Sales) with MSE and the one-cycle schedule, and score exp-RMSPE on `valid`.

    `cfg.train.clip` bounds the gradient norm: without it a seed now and then pushes a rare input (the day
    before or after a long closure) to the sigmoid's ceiling, and its predictions there (300k for a
    store selling 3k) never come back (benchmarks/README.md). Clipping makes that rarer, not
    impossible, so after training the predictions are also capped per value of `cfg.cap_by` at 22%
    above the most it sold in a training row (`log_ceilings`). Then, with `cfg.rmspe_scale`, the output
    is shifted by `rmspe_log_scale` of the predictions on the training rows (the RMSPE-optimal factor on
    Sales, fitted without looking at `valid`)."""
    if not proc.fitted:
        proc.fit(train)
    cap_by = cfg.cap_by
    if cap_by is not None and cap_by not in proc.all_cat_names:
        raise ValueError(f"cap_by={cap_by!r} is not one of the categorical columns {proc.all_cat_names}; "
                         "name one of them, or pass cap_by=None for no cap")
    seed_everything(seed)
    learn = sales_learner(train, valid, proc, cfg, seed, device)
    train_dl, valid_dl, net = learn.train_dl, learn.valid_dl, learn.model
    cap_input = None if cap_by is None else proc.all_cat_names.index(cap_by)
    learn.fit(cfg.train.epochs, cfg.train.lr, show=show)
    log_cap = None if cap_by is None else log_ceilings(train_dl.cats[:, cap_input], train_dl.y,
                                                       proc.cardinalities[cap_input])
    model = ScaledCapped(net, 0.0, cap_input, log_cap).to(learn.device)  # get_preds sets eval mode
    if cfg.rmspe_scale:  # the training rows' tensors again, in order
        fit_rows = TensorLoader(train_dl.cats, train_dl.conts, train_dl.y, batch_size=8192)
        model.log_scale.fill_(rmspe_log_scale(*learn.get_preds(fit_rows, model=model)))
    preds, targets = learn.get_preds(valid_dl, model=model)
    return Run(learn, model, proc, exp_rmspe(preds, targets).item(), float(learn.history["seconds"].sum()))


def lesson_style_rmspe(pred_log, valid: pd.DataFrame, batch_size: int = LESSON_VALID_BS) -> float:
    """`batch_exp_rmspe` of log-Sales predictions for the rows of `valid`, taken in train.csv's order
    (newest date first, then by store), as the lesson's validation loader read them: the figure to hold
    against the lesson's printed 0.0985."""
    order = np.lexsort((valid["Store"].to_numpy(), -valid["Date"].to_numpy().astype("int64")))
    pred = torch.as_tensor(np.asarray(pred_log, dtype=np.float64))[order]
    targ = torch.tensor(np.log(valid["Sales"].to_numpy(dtype=np.float64)))[order]
    return batch_exp_rmspe(pred, targ, batch_size)


@dataclass
class TrainedSales:
    """A run trained by `sales_job` in another process: what comes back instead of its Learner."""
    model: ScaledCapped     # the finished network (factor and cap included), on the CPU, in eval mode
    proc: TabularProcessor  # its columns' coding, fitted on the run's training rows
    rmspe: float            # exp-RMSPE on the validation rows
    seconds: float          # wall time of the fit
    history: pd.DataFrame   # the Learner's per-epoch table
    valid_log: np.ndarray   # the model's log-Sales predictions for the validation rows, in their order


@functools.cache
def split_rows(preset: str, forecast: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, validation rows) of a preset: open days with sales, split on the lesson's window
    or, with `forecast`, on the last 48 days with only earlier days to train on. Built once per process
    (the features of the full data take seconds), so a worker of `run_parallel` pays for it once."""
    train, _ = features.build(rossmann(preset))
    window = features.FORECAST_VALID if forecast else features.LESSON_VALID
    return features.split(features.sales_rows(train), window, forecast=forecast)


def sales_job(preset: str, cfg: SalesConfig, seed: int, cat_names=tuple(features.CAT_NAMES),
              cont_names=tuple(features.CONT_NAMES), forecast: bool = False) -> TrainedSales:
    """`fit_sales_model` on `split_rows(preset, forecast)` with a processor of these columns, for
    `run_parallel`: its arguments and result travel between processes, the rows do not."""
    fit_rows, valid = split_rows(preset, forecast)
    run = fit_sales_model(fit_rows, valid, TabularProcessor(list(cat_names), list(cont_names)), cfg,
                          seed=seed, show=False, device="cpu")
    valid_log = run.predict(run.learn.valid_dl)[0].double().numpy()
    return TrainedSales(run.model.cpu().eval(), run.proc, run.rmspe, run.seconds, run.learn.history,
                        valid_log)
