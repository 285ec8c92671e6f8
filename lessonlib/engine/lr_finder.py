"""Leslie Smith's LR range test: train briefly while the LR grows exponentially, watch the loss.

The test is a callback (`LRFinder`) run through the Learner's own `fit`, so every other callback sees
the usual events (the LM's state reset, AR/TAR, clipping, the distributed wrapper); `lr_find` snapshots
what training changes before that fit and puts it all back after it, however it ends.
"""

import copy
import math

import numpy as np
import pandas as pd
import torch

from lessonlib.core import n_batches
from lessonlib.engine import distributed as ddp
from lessonlib.engine.callbacks import (
    Callback,
    CancelEpochException,
    CancelFitException,
    set_hypers,
    smoothed,
)
from lessonlib.engine.checkpoint import set_training_state, training_state
from lessonlib.plots import new_axes


def _attributes(m) -> dict:
    """A module's plain attributes: not its mode, parameters, buffers, submodules or hooks."""
    return {k: v for k, v in vars(m).items() if not k.startswith("_") and k != "training"}


def _copy(v):
    """Tensors copied (detached: a training forward's outputs are not graph leaves, which deepcopy
    refuses), inside lists, tuples and dicts too; anything else kept by reference."""
    if isinstance(v, torch.Tensor):
        return v.detach().clone()
    if isinstance(v, (list, tuple)):
        return type(v)(_copy(x) for x in v)
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    return v


def plain_state(model) -> list:
    """Per submodule: its mode and the plain attributes it keeps between calls (an LSTM's hidden
    state, its last outputs), copied."""
    return [(m, m.training, {k: _copy(v) for k, v in _attributes(m).items()}) for m in model.modules()]


def put_back(obj, saved: dict, names) -> None:
    """Set each of `names` on `obj` to its value in `saved`; one that `saved` lacks (set since) is removed."""
    for k in names:
        if k in saved:
            setattr(obj, k, saved[k])
        elif k in vars(obj):
            delattr(obj, k)


def set_plain_state(saved: list) -> None:
    """Put back what `plain_state` saw, removing attributes set since."""
    for m, mode, attrs in saved:
        m.train(mode)
        put_back(m, attrs, set(_attributes(m)) | set(attrs))


# the loop's own attributes that a fit sets: put back too, so the Learner reads as before the test
LOOP_STATE = ("start_epoch", "training", "show", "n_iter", "iter", "batch", "y", "pred", "loss",
              "valid_stats")


def snapshot(learn) -> dict:
    """Everything a fit changes in `learn`, copied: its `training_state` (weights, optimizer, scaler,
    history, position, random generators), each module's mode and plain state, and the loop's
    attributes (LOOP_STATE: the last batch, its loss, ...)."""
    return {"training": copy.deepcopy(training_state(learn)), "modules": plain_state(learn.model),
            "loop": {k: _copy(v) for k, v in vars(learn).items() if k in LOOP_STATE}}


def restore(learn, saved: dict) -> None:
    set_training_state(learn, saved["training"])
    learn.opt.zero_grad(set_to_none=True)
    set_plain_state(saved["modules"])
    put_back(learn, saved["loop"], LOOP_STATE)


class LRFinder(Callback):
    """Before each training batch sets every layer group's LR to `start_lr * (end_lr/start_lr)^(i/(num_it-1))`
    (momentum 0.9), records the loss (averaged over processes), and ends the fit after `num_it`
    batches, at a loss that is not finite, or once the smoothed loss is 4 times its lowest (diverged:
    the rest says nothing). Never validates (each epoch ends with its last batch). `lrs`, `losses`
    hold the curve."""

    # after the schedule (its LR is replaced here) and after every callback that changes the loss (AR/TAR:
    # the curve is the loss being minimised), before NanCheck (a blown-up loss ends the test, not an error)
    order = 90

    def __init__(self, start_lr: float, end_lr: float, num_it: int):
        self.start_lr, self.end_lr, self.num_it = start_lr, end_lr, num_it
        self.lrs, self.losses = [], []

    def before_batch(self, learn):
        if learn.training:
            i = len(self.losses)
            self.lr = self.start_lr * (self.end_lr / self.start_lr) ** (i / max(self.num_it - 1, 1))
            set_hypers(learn.opt, [self.lr] * len(learn.opt.param_groups), 1.0, 0.9)

    def after_loss(self, learn):
        if not learn.training:
            return
        loss = ddp.all_reduce_sum(learn.loss.detach().float().clone()).item() / ddp.world_size()
        if not math.isfinite(loss):
            raise CancelFitException
        self.lrs.append(self.lr)
        self.losses.append(loss)
        smooth = smoothed(self.losses)
        if smooth[-1] > 4 * min(smooth):
            raise CancelFitException

    def after_batch(self, learn):
        if len(self.losses) >= self.num_it:
            raise CancelFitException
        if learn.iter == learn.n_iter - 1:
            raise CancelEpochException  # no validation: on to the next pass over the training data



def lr_find(learn, start_lr: float = 1e-7, end_lr: float = 10.0, num_it: int = 100, show: bool = True,
            ax=None) -> float:
    """Run `LRFinder` through `learn.fit` for up to `num_it` batches (as many passes over the training
    data as that takes), then leave `learn` as it was. Keeps `learn.lr_find_results` (lr, smoothed
    loss), plots them (log x) and returns a suggestion: the LR at the lowest loss divided by 10."""
    finder = LRFinder(start_lr, end_lr, num_it)
    shard = ddp.shard_train(learn.train_dl, ddp.rank(), ddp.world_size())  # what each process reads
    epochs = math.ceil(num_it / n_batches(shard, "train_dl"))
    saved = snapshot(learn)  # before the fit: its before_fit callbacks start changing things (the history)
    try:
        learn.fit(epochs, start_lr, schedule="constant", show=False, callbacks=[finder])
    finally:
        restore(learn, saved)
    if not finder.lrs:
        raise FloatingPointError(f"the loss was not finite even at lr={start_lr}: check inputs and model")
    smooth = smoothed(finder.losses)
    learn.lr_find_results = pd.DataFrame({"lr": finder.lrs, "loss": smooth})
    suggestion = float(f"{finder.lrs[int(np.argmin(smooth))] / 10:.2g}")  # 2 digits: all an LR needs
    if show and ddp.is_main():
        ax = ax or new_axes()
        ax.plot(finder.lrs, smooth)
        ax.axvline(suggestion, color="tab:red", linestyle="--", label=f"suggested lr {suggestion:.2g}")
        ax.set(xscale="log", xlabel="learning rate (log scale)", ylabel="training loss (smoothed)",
               title="LR finder")
        ax.legend()
    return suggestion
