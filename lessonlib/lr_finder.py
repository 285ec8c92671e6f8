"""Leslie Smith's LR range test: train briefly while the LR grows exponentially, watch the loss."""

import copy
import math

import numpy as np
import pandas as pd

from lessonlib import distributed as ddp
from lessonlib.callbacks import set_hypers, smoothed
from lessonlib.checkpoint import get_loader_rngs, rng_states, set_loader_rngs, set_rng_states
from lessonlib.core import n_batches
from lessonlib.plots import new_axes


def cycle(dl):
    """The loader's batches over and over (a fresh pass, with fresh shuffling, each time round)."""
    while True:
        yield from dl


def lr_find(learn, start_lr: float = 1e-7, end_lr: float = 10.0, num_it: int = 100, show: bool = True,
            ax=None) -> float:
    """Train `learn` for up to `num_it` batches while raising the LR from `start_lr` to `end_lr`, then
    put the model, optimizer and random states back as they were. Stops early once the smoothed loss
    is 4 times its lowest (diverged: the rest says nothing). Keeps `learn.lr_find_results` (lr, smoothed
    loss), plots them (log x) and returns a suggestion: the LR at the lowest loss divided by 10."""
    n_batches(learn.train_dl, "train_dl")
    saved = copy.deepcopy({"model": learn.model.state_dict(), "opt": learn.opt.state_dict(),
                           "rng": rng_states(), "loaders": get_loader_rngs(learn.train_dl)})
    lrs, losses = [], []
    learn.training = True
    learn.model.train()
    try:
        for i, batch in zip(range(num_it), cycle(learn.train_dl), strict=False):
            learn.iter, lr = i, start_lr * (end_lr / start_lr) ** (i / max(num_it - 1, 1))
            set_hypers(learn.opt, learn.group_lrs(lr), 1.0, 0.9)
            loss = learn.one_batch(batch).item()
            if not math.isfinite(loss):
                break
            lrs.append(lr)
            losses.append(loss)
            smooth = smoothed(losses)
            if smooth[-1] > 4 * min(smooth):
                break
    except FloatingPointError:  # the loss blew up (caught on the CPU before the step): the end
        pass
    finally:
        learn.model.load_state_dict(saved["model"])
        learn.opt.load_state_dict(saved["opt"])
        set_rng_states(saved["rng"])
        set_loader_rngs(learn.train_dl, saved["loaders"])
        learn.opt.zero_grad(set_to_none=True)
        learn.training = False
    if not lrs:
        raise FloatingPointError(f"the loss was not finite even at lr={start_lr}: check inputs and model")
    smooth = smoothed(losses)
    learn.lr_find_results = pd.DataFrame({"lr": lrs, "loss": smooth})
    suggestion = float(f"{lrs[int(np.argmin(smooth))] / 10:.2g}")  # 2 digits: all an LR needs
    if show and ddp.is_main():
        ax = ax or new_axes()
        ax.plot(lrs, smooth)
        ax.axvline(suggestion, color="tab:red", linestyle="--", label=f"suggested lr {suggestion:.2g}")
        ax.set(xscale="log", xlabel="learning rate (log scale)", ylabel="training loss (smoothed)",
               title="LR finder")
        ax.legend()
    return suggestion
