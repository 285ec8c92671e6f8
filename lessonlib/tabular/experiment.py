"""One Rossmann training run: processor-coded loaders, the entity-embedding model, the shared Learner,
and exp-RMSPE on the validation rows. Used by notebook 03 and benchmarks/rossmann.py."""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from lessonlib.core import seed_everything
from lessonlib.learner import Learner
from lessonlib.tabular.loader import TensorLoader, frame_loader
from lessonlib.tabular.model import (
    TabularModel,
    batch_exp_rmspe,
    emb_sizes,
    exp_rmspe,
    log_ceilings,
    rmspe_log_scale,
    y_range_for,
)
from lessonlib.tabular.preprocess import TabularProcessor


@dataclass
class Run:
    learn: Learner
    proc: TabularProcessor
    rmspe: float          # exp-RMSPE on the validation rows
    seconds: float        # wall time of learn.fit


def fit_sales_model(train: pd.DataFrame, valid: pd.DataFrame, cat_names, cont_names, *, epochs: int,
                    lr: float, batch_size: int = 512, layers=(1000, 500), ps=(0.001, 0.01),
                    emb_drop: float = 0.04, size_rule="lesson", one_hot: bool = False, seed: int = 42,
                    proc: TabularProcessor | None = None, show: bool = True, device=None, amp=None,
                    wd: float = 0.01, clip: float | None = 1.0, cap_by: str | None = "Store",
                    rmspe_scale: bool = True) -> Run:
    """Fit the processing on `train` (unless a fitted `proc` is given), train the network on log(Sales)
    with MSE and the one-cycle schedule, and score exp-RMSPE on `valid`. With `rmspe_scale` the trained
    model's output is then shifted by `rmspe_log_scale` of its predictions on the training rows (the
    RMSPE-optimal factor on Sales, fitted without looking at `valid`). `amp`, `wd` (AdamW's decoupled
    weight decay) and `clip` go to the Learner. `clip` bounds the gradient norm: without it a seed now
    and then pushes a rare input (the day before or after a long closure) to the sigmoid's ceiling, and
    its predictions there (300k for a store selling 3k) never come back (full data, forecast split:
    exp-RMSPE 0.312 unclipped, 0.104 clipped at 1.0, same seed). Clipping makes it rarer, not impossible,
    so after training the predictions are also capped per value of the categorical column `cap_by` at
    22% above the most it sold in a training row (`log_ceilings`; None: no cap), before the factor."""
    seed_everything(seed)
    proc = proc or TabularProcessor(cat_names, cont_names).fit(train)
    train_dl = frame_loader(proc, train, batch_size=batch_size, shuffle=True, seed=seed)
    valid_dl = frame_loader(proc, valid, batch_size=4096)
    log_y = np.log(train["Sales"].to_numpy())
    if cap_by is not None and cap_by not in proc.all_cat_names:
        raise ValueError(f"cap_by={cap_by!r} is not one of the categorical columns {proc.all_cat_names}; "
                         "name one of them, or pass cap_by=None for no cap")
    sizes = emb_sizes(proc.cardinalities, size_rule)
    cap_input = None if cap_by is None else proc.all_cat_names.index(cap_by)
    model = TabularModel(proc.cardinalities, len(proc.cont_names), sizes=sizes, layers=layers, ps=ps,
                         emb_drop=emb_drop, y_range=y_range_for(log_y), y_init=float(log_y.mean()),
                         one_hot=one_hot, cap_input=cap_input)
    learn = Learner(model, train_dl, valid_dl, F.mse_loss, device=device, amp=amp, wd=wd, clip=clip)
    learn.fit(epochs, lr, show=show)
    if cap_by is not None:
        model.log_cap.copy_(log_ceilings(train_dl.cats[:, cap_input], train_dl.y, model.log_cap.numel()))
    if rmspe_scale:  # the training rows' tensors again, in order
        fit_rows = TensorLoader(train_dl.cats, train_dl.conts, train_dl.y, batch_size=8192)
        model.log_scale.fill_(rmspe_log_scale(*learn.get_preds(fit_rows)))
    preds, targets = learn.get_preds(valid_dl)
    return Run(learn, proc, exp_rmspe(preds, targets).item(), float(learn.history["seconds"].sum()))


def lesson_style_rmspe(pred_log, valid: pd.DataFrame, batch_size: int = 256) -> float:
    """`batch_exp_rmspe` of log-Sales predictions for the rows of `valid`, taken in train.csv's order
    (newest date first, then by store), as the lesson's validation loader read them: the figure to hold
    against the lesson's printed 0.0985."""
    order = np.lexsort((valid["Store"].to_numpy(), -valid["Date"].to_numpy().astype("int64")))
    pred = torch.as_tensor(np.asarray(pred_log, dtype=np.float64))[order]
    targ = torch.tensor(np.log(valid["Sales"].to_numpy(dtype=np.float64)))[order]
    return batch_exp_rmspe(pred, targ, batch_size)
