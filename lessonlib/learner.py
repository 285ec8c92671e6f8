"""The training loop every notebook uses: a model, its loaders, a loss and an optimizer.

    learn = Learner(model, train_dl, valid_dl, F.cross_entropy, metrics={"acc": accuracy})
    lr = learn.lr_find()          # plots loss against LR, leaves the model as it was
    learn.fit(3, lr)              # one-cycle schedule; prints one line per epoch; learn.history
    learn.plot_losses(); learn.save("model.pt")
    learn.load("model.pt"); learn.fit(3, lr, start_epoch=learn.epoch)   # resume an interrupted fit

Runs on cuda, mps or cpu (mixed precision on CUDA), and unchanged under `torchrun` with
DistributedDataParallel (see lessonlib.distributed).
"""

import contextlib
import copy
import math
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from lessonlib import distributed as ddp
from lessonlib.core import atomic_write, default_device, progress
from lessonlib.schedule import get_schedule


def accuracy(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Share of rows whose highest score is the target class."""
    return (pred.argmax(dim=-1) == target).float().mean()


def to_device(batch, device):
    """Move tensors (also inside tuples, lists and dicts) to `device`; anything else is left alone."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def n_batches(dl, name: str) -> int:
    """len(dl), with a clear error for a loader that yields nothing."""
    n = len(dl)
    if n == 0:
        raise ValueError(f"{name} is empty: it yields no batches. Check that its dataset has samples and "
                         "that batch_size is not larger than the dataset when drop_last=True.")
    return n


def rng_states() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    np_state = np.random.get_state()
    state["numpy"] = (np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:])
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_states(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def cycle(dl):
    """The loader's batches over and over (a fresh pass, with fresh shuffling, each time round)."""
    while True:
        yield from dl


def loader_rngs(dl) -> list:
    """The random generators (torch or numpy) that a loader, its sampler or batch sampler keep as
    `.generator` or `.rng`: checkpoints and lr_find save and restore their states."""
    parts = [dl, getattr(dl, "sampler", None), getattr(dl, "batch_sampler", None)]
    parts.append(getattr(parts[2], "sampler", None))
    found = []
    for part in parts:
        for g in (getattr(part, "generator", None), getattr(part, "rng", None)):
            if isinstance(g, (torch.Generator, np.random.Generator)) and all(g is not f for f in found):
                found.append(g)
    return found


def get_rng(g):
    return g.get_state() if isinstance(g, torch.Generator) else g.bit_generator.state


def set_rng(g, state) -> None:
    if isinstance(g, torch.Generator):
        g.set_state(state)
    else:
        g.bit_generator.state = state


class Learner:
    """Trains `model` on `train_dl`, validating on `valid_dl` after every epoch.

    Batches are `(x, y)`; the loss is `loss_func(model(x), y)`. `metrics` maps names to callables
    `(pred, target) -> scalar`, averaged over validation targets (weighted by `target.numel()`). `clip`
    is the max global gradient norm. `amp`: None = bf16/fp16 autocast on CUDA only, False = off, "bf16"
    (also on CPU) or "fp16". Callbacks may define before_fit, before_epoch, before_validate,
    before_batch (returns the batch, called before the move to the device), after_loss (returns the
    loss), after_backward (gradients computed, not yet clipped), after_epoch and after_fit;
    `learn.training` tells training from validation.
    """

    def __init__(self, model: nn.Module, train_dl, valid_dl=None, loss_func=None, metrics=None,
                 opt_func=None, wd: float = 0.01, clip: float | None = None, callbacks=(),
                 device=None, amp=None):
        if loss_func is None:
            raise ValueError("Learner needs a loss_func, e.g. torch.nn.functional.cross_entropy")
        self.distributed = ddp.launched_by_torchrun() or ddp.is_distributed()
        self.device = torch.device(device) if device else (
            ddp.local_device() if self.distributed else default_device())
        if self.distributed:
            ddp.init(self.device)
        self.model = model.to(self.device)
        self.train_dl, self.valid_dl, self.loss_func = train_dl, valid_dl, loss_func
        self.metrics = dict(metrics or {})
        self.wd, self.clip, self.callbacks = wd, clip, list(callbacks)
        self.amp_dtype = self._amp_dtype(amp)
        use_scaler = self.amp_dtype == torch.float16 and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        groups, seen = [], set()  # a tied weight goes to the first group that holds it
        for g in self.layer_groups():
            groups.append({"params": [p for p in g.parameters() if id(p) not in seen]})
            seen.update(id(p) for p in groups[-1]["params"])
        opt_func = opt_func or (lambda groups, **kw: torch.optim.AdamW(groups, betas=(0.9, 0.99), **kw))
        self.opt = opt_func(groups, lr=1e-3, weight_decay=wd)
        self.epoch, self.training, self.fit_args = 0, False, None
        self.history = pd.DataFrame()
        self.batch_losses: list[float] = []  # every training batch of the current fit, for plot_losses
        self.epoch_ends: list[int] = []      # len(batch_losses) at the end of each epoch
        self.check_every = 1 if self.device.type == "cpu" else 32  # NaN check (a GPU sync) every k batches
        self.sum_dtype = torch.float32 if self.device.type == "mps" else torch.float64  # mps has no float64

    # ---- setup helpers -------------------------------------------------------------------------------
    def _amp_dtype(self, amp):
        kind = self.device.type
        if amp is None:
            amp = kind == "cuda"
        if amp is False:
            return None
        if amp is True:
            return torch.bfloat16 if kind != "cuda" or torch.cuda.is_bf16_supported() else torch.float16
        dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
        if amp not in dtypes:
            raise ValueError(f"amp={amp!r}: use None (auto), False, True, 'bf16' or 'fp16'")
        if amp == "fp16" and kind != "cuda":
            raise ValueError("amp='fp16' needs CUDA; on the CPU use amp='bf16'")
        return dtypes[amp]

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def layer_groups(self) -> list[nn.Module]:
        """The model's `layer_groups()` if it defines one, else the whole model as one group."""
        fn = getattr(self.model, "layer_groups", None)
        groups = list(fn()) if callable(fn) else [self.model]
        seen = {id(p) for g in groups for p in g.parameters()}
        missing = [n for n, p in self.model.named_parameters() if id(p) not in seen]
        if missing:
            raise ValueError(f"layer_groups() misses parameters {missing[:3]}...: every parameter must be "
                             "in exactly one group")
        return groups

    def group_lrs(self, lr) -> list[float]:
        """One LR per layer group from a float, a list, or a slice (geometric spread from start to stop;
        slice(hi) gives hi/10 to every group but the last)."""
        n = len(self.opt.param_groups)
        if isinstance(lr, slice):
            if lr.start is None:
                return [lr.stop / 10] * (n - 1) + [lr.stop]
            return [float(v) for v in np.geomspace(lr.start, lr.stop, n)] if n > 1 else [lr.stop]
        if isinstance(lr, (list, tuple)):
            if len(lr) != n:
                raise ValueError(f"got {len(lr)} learning rates for {n} layer groups")
            return [float(v) for v in lr]
        return [float(lr)] * n

    def freeze_to(self, n: int) -> None:
        """Freeze layer groups [:n] (no gradients, no updates) and unfreeze the rest; -1 = all but last."""
        groups = self.layer_groups()
        n = n % len(groups) if n < 0 else n
        for i, g in enumerate(groups):
            for p in g.parameters():
                p.requires_grad_(i >= n)

    def freeze(self) -> None:
        self.freeze_to(-1)

    def unfreeze(self) -> None:
        self.freeze_to(0)

    def _callback(self, event: str, *args):
        for cb in self.callbacks:
            fn = getattr(cb, event, None)
            if fn is not None:
                result = fn(self, *args)
                if args and result is not None:
                    args = (result, *args[1:])
        return args[0] if args else None

    def _set_hypers(self, lrs, mult: float, mom: float) -> None:
        for group, lr in zip(self.opt.param_groups, lrs, strict=True):
            group["lr"] = lr * mult
            if "betas" in group:
                group["betas"] = (mom, group["betas"][1])
            elif "momentum" in group:
                group["momentum"] = mom

    # ---- one step ------------------------------------------------------------------------------------
    def _train_step(self, model, batch, where: str) -> torch.Tensor:
        batch = to_device(self._callback("before_batch", batch), self.device)
        x, y = batch
        with self.autocast():
            pred = model(x)
            loss = self.loss_func(pred, y)
        loss = self._callback("after_loss", loss, pred, y)
        self._losses.append(loss.detach())
        if len(self._losses) % self.check_every == 0:
            self._check_finite(where)
        if self.scaler is None:
            loss.backward()
            self._callback("after_backward")
            if self.clip is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
            self.opt.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.opt)  # callbacks and clipping see the true gradients
            self._callback("after_backward")
            if self.clip is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
            self.scaler.step(self.opt)
            self.scaler.update()
        self.opt.zero_grad(set_to_none=True)
        return loss

    def _check_finite(self, where: str) -> None:
        new = self._losses[self._checked:]
        if not new or (len(new) == 1 and math.isfinite(new[0].item())):  # the per-batch CPU fast path
            self._checked = len(self._losses)
            return
        recent = torch.stack(new).float().cpu()
        bad = (~torch.isfinite(recent)).nonzero()
        if len(bad):
            i = self._checked + int(bad[0])
            lrs = ", ".join(f"{g['lr']:.3g}" for g in self.opt.param_groups)
            raise FloatingPointError(
                f"loss is {recent[int(bad[0])].item()} at {where}, batch {i}: training stopped. Lower the "
                f"learning rate (now {lrs}), set clip= to bound the gradients, or check the inputs for "
                "NaN/inf.")
        self._checked = len(self._losses)

    # ---- fit -----------------------------------------------------------------------------------------
    def fit(self, epochs: int, lr=1e-3, schedule="one_cycle", show: bool = True, start_epoch: int = 0,
            checkpoint=None) -> None:
        """Train for `epochs` epochs with peak LR `lr` (float, list or slice over layer groups).

        The schedule spans all `epochs`; `start_epoch` resumes inside it after `load`
        (`learn.fit(2, lr, start_epoch=learn.epoch)`). With `checkpoint`, saves there after every epoch.
        """
        if not 0 <= start_epoch < epochs:
            raise ValueError(f"start_epoch={start_epoch} must be in [0, epochs={epochs})")
        train_dl = ddp.shard_train(self.train_dl) if self.distributed else self.train_dl
        valid_dl = ddp.shard_valid(self.valid_dl) if self.distributed and self.valid_dl else self.valid_dl
        n = n_batches(train_dl, "train_dl")
        if valid_dl is not None:
            n_batches(valid_dl, "valid_dl")
        lrs, sched = self.group_lrs(lr), get_schedule(schedule)
        args = {"epochs": epochs, "lr": lrs, "schedule": str(schedule)}
        if start_epoch > 0 and self.fit_args not in (None, args):
            raise ValueError(f"resuming a run begun as fit({self.fit_args}); call fit with the same epochs, "
                             f"lr and schedule (got {args}) so the schedule continues where it stopped")
        self.fit_args = args
        if start_epoch == 0:
            self.history, self.batch_losses, self.epoch_ends = pd.DataFrame(), [], []
        model = self.model
        if self.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        main = ddp.is_main()
        if show and main:
            tqdm.write(self._row(["epoch", "train_loss", "valid_loss", *self.metrics, "time"]))
        self._callback("before_fit")
        quiet = {} if main else {"disable": True}  # bars on rank 0 only (and only if LESSONLIB_PROGRESS)
        for epoch in progress(range(start_epoch, epochs), desc="epoch", **quiet):
            start, self.epoch = time.perf_counter(), epoch
            ddp.set_epoch(train_dl, epoch)
            self.training, self._losses, self._checked, sizes = True, [], 0, []
            model.train()
            self._callback("before_epoch")
            # iter() here: tqdm.auto would otherwise start the loader twice (and draw its seeds twice)
            batches = progress(iter(train_dl), total=n, desc="train", **quiet)
            for i, batch in enumerate(batches):
                self._set_hypers(lrs, *sched((epoch * n + i) / (epochs * n)))
                self._train_step(model, batch, f"epoch {epoch}")
                sizes.append(batch[1].numel())
            self._check_finite(f"epoch {epoch}")
            losses = torch.stack(self._losses).float().cpu()
            self.batch_losses += losses.tolist()
            self.epoch_ends.append(len(self.batch_losses))
            total = [float(losses @ torch.tensor(sizes, dtype=torch.float)), float(sum(sizes))]
            sums = ddp.all_reduce_sum(torch.tensor(total, dtype=self.sum_dtype, device=self.device)).cpu()
            row = {"epoch": epoch, "train_loss": float(sums[0] / sums[1])}
            stats = self._validate(valid_dl) if valid_dl is not None else {"loss": math.nan}
            row["valid_loss"] = stats.pop("loss")
            row.update(stats)
            row["seconds"] = time.perf_counter() - start
            self.history = pd.concat([self.history, pd.DataFrame([row])], ignore_index=True)
            if show and main:
                values = [row.get(k, math.nan) for k in ["train_loss", "valid_loss", *self.metrics]]
                tqdm.write(self._row([epoch, *values, f"{row['seconds']:.1f}s"]))  # print, around the bars
            self._callback("after_epoch")
            self.epoch = epoch + 1
            if checkpoint is not None:
                self.save(checkpoint)
        self.training = False
        self._callback("after_fit")

    @staticmethod
    def _row(values) -> str:
        def fmt(v):
            if isinstance(v, float):
                return f"{v:.4f}" if abs(v) < 1e4 or math.isnan(v) else f"{v:.4g}"
            return str(v)
        return "  ".join(f"{fmt(v):>10}" for v in values)

    # ---- evaluation ----------------------------------------------------------------------------------
    def _batches_eval(self, dl):
        """Yields (pred, y) for every batch of `dl`, in eval mode without gradients."""
        n_batches(dl, "the loader")
        self.training = False
        self.model.eval()
        self._callback("before_validate")
        with torch.no_grad():
            for batch in dl:
                x, y = to_device(self._callback("before_batch", batch), self.device)
                with self.autocast():
                    pred = self.model(x)
                yield pred, y

    def _validate(self, dl) -> dict:
        """Loss and metrics over `dl`, weighted by batch size and summed across processes."""
        sums = torch.zeros(len(self.metrics) + 2, dtype=self.sum_dtype, device=self.device)
        for pred, y in self._batches_eval(dl):
            with self.autocast():
                loss = self._callback("after_loss", self.loss_func(pred, y), pred, y)
            values = [loss, *[m(pred, y) for m in self.metrics.values()]]
            sums[:-1] += torch.stack([torch.as_tensor(v, dtype=self.sum_dtype, device=self.device)
                                      for v in values]) * y.numel()
            sums[-1] += y.numel()
        sums = ddp.all_reduce_sum(sums).cpu()
        return dict(zip(["loss", *self.metrics], (sums[:-1] / sums[-1]).tolist(), strict=True))

    def evaluate(self, dl=None) -> dict:
        """{"loss": .., <metric>: ..} over `dl` (the validation loader by default)."""
        return self._validate(self._eval_loader(dl))

    def _eval_loader(self, dl):
        if dl is None and self.valid_dl is None:
            raise ValueError("no loader to evaluate: pass one, or give the Learner a valid_dl")
        return dl if dl is not None else self.valid_dl

    def get_preds(self, dl=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(predictions, targets) over `dl`, concatenated on the CPU (the model's first output if it
        returns a tuple)."""
        preds, targets = [], []
        for pred, y in self._batches_eval(self._eval_loader(dl)):
            pred = pred[0] if isinstance(pred, (tuple, list)) else pred
            preds.append(pred.float().cpu())
            targets.append(y.cpu())
        return torch.cat(preds), torch.cat(targets)

    # ---- LR finder and plots -------------------------------------------------------------------------
    def lr_find(self, start_lr: float = 1e-7, end_lr: float = 10.0, num_it: int = 100, show: bool = True,
                ax=None) -> float:
        """Train briefly while raising the LR exponentially from `start_lr` to `end_lr`, then put the
        model, optimizer and random states back as they were. Plots the smoothed loss against the LR
        (log x) and returns a suggestion: the LR at the lowest loss divided by 10 (2 significant digits)."""
        n_batches(self.train_dl, "train_dl")
        saved = copy.deepcopy({"model": self.model.state_dict(), "opt": self.opt.state_dict(),
                               "rng": rng_states(),
                               "loaders": [get_rng(g) for g in loader_rngs(self.train_dl)]})
        lrs, smoothed, avg = [], [], 0.0
        self.training, self._losses, self._checked = True, [], 0
        self.model.train()
        try:
            for i, batch in zip(range(num_it), cycle(self.train_dl), strict=False):
                lr = start_lr * (end_lr / start_lr) ** (i / max(num_it - 1, 1))
                self._set_hypers([lr] * len(self.opt.param_groups), 1.0, 0.9)
                loss = self._train_step(self.model, batch, "lr_find").item()
                if not math.isfinite(loss):
                    break
                avg = 0.98 * avg + 0.02 * loss
                lrs.append(lr)
                smoothed.append(avg / (1 - 0.98 ** (i + 1)))
                if smoothed[-1] > 4 * min(smoothed):  # diverged: the rest of the sweep says nothing
                    break
        except FloatingPointError:  # the loss blew up (caught on the CPU before the step): the end
            pass
        finally:
            self.model.load_state_dict(saved["model"])
            self.opt.load_state_dict(saved["opt"])
            set_rng_states(saved["rng"])
            for g, s in zip(loader_rngs(self.train_dl), saved["loaders"], strict=True):
                set_rng(g, s)
            self.opt.zero_grad(set_to_none=True)
            self.training = False
        if not smoothed:
            raise FloatingPointError(f"the loss was not finite even at lr={start_lr}: check inputs and model")
        self.lr_find_results = pd.DataFrame({"lr": lrs, "loss": smoothed})
        suggestion = float(f"{lrs[int(np.argmin(smoothed))] / 10:.2g}")  # 2 digits: all an LR needs
        if show and ddp.is_main():
            ax = ax or _new_axes()
            ax.plot(lrs, smoothed)
            ax.axvline(suggestion, color="tab:red", linestyle="--", label=f"suggested lr {suggestion:.2g}")
            ax.set(xscale="log", xlabel="learning rate (log scale)", ylabel="training loss (smoothed)",
                   title="LR finder")
            ax.legend()
        return suggestion

    def plot_losses(self, ax=None) -> None:
        """Training loss per batch (exponentially smoothed) and validation loss at each epoch's end."""
        if not self.batch_losses:
            raise RuntimeError("no losses recorded yet: call fit() first")
        if not ddp.is_main():
            return
        avg, smooth = 0.0, []
        for i, v in enumerate(self.batch_losses, 1):
            avg = 0.98 * avg + 0.02 * v
            smooth.append(avg / (1 - 0.98 ** i))
        ax = ax or _new_axes()
        ax.plot(range(1, len(smooth) + 1), smooth, label="train (smoothed)")
        if "valid_loss" in self.history and self.history["valid_loss"].notna().any():
            ax.plot(self.epoch_ends, self.history["valid_loss"], "o-", label="valid")
        ax.set(xlabel="batches", ylabel="loss")
        ax.legend()

    # ---- checkpoints ---------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write model, optimizer, schedule position, epoch, history and RNG states to `path` (rank 0
        only), via a temporary file and a rename so a crash never leaves half a checkpoint."""
        path = Path(path)
        if ddp.is_main():
            state = {"model": self.model.state_dict(), "opt": self.opt.state_dict(),
                     "scaler": self.scaler.state_dict() if self.scaler else None,
                     "epoch": self.epoch, "fit_args": self.fit_args,
                     "history": self.history.to_dict("list"), "batch_losses": self.batch_losses,
                     "epoch_ends": self.epoch_ends, "rng": rng_states(),
                     "loader_rng": [get_rng(g) for g in loader_rngs(self.train_dl)]}
            with atomic_write(path) as f:
                torch.save(state, f)
        ddp.barrier()
        return path

    def load(self, path) -> "Learner":
        """Restore everything `save` wrote; continue with `fit(epochs, lr, start_epoch=learn.epoch)`."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        if self.scaler is not None and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.fit_args = state["epoch"], state["fit_args"]
        self.history = pd.DataFrame(state["history"])
        self.batch_losses, self.epoch_ends = state["batch_losses"], state["epoch_ends"]
        set_rng_states(state["rng"])
        for g, s in zip(loader_rngs(self.train_dl), state["loader_rng"], strict=False):
            set_rng(g, s)
        return self


class GradNorm:
    """A callback that records the global gradient norm of every training step, before clipping, in
    `norms`: what `clip` caps, and how often it has to."""

    def __init__(self):
        self.norms: list[float] = []

    def before_fit(self, learn):
        self.norms = []

    def after_backward(self, learn):
        grads = [p.grad for p in learn.model.parameters() if p.grad is not None]
        self.norms.append(float(nn.utils.get_total_norm(grads)))


def _new_axes():
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6, 4))[1]
