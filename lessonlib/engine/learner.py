"""The training loop every notebook uses: a model, its loaders, a loss and an optimizer.

    learn = Learner(model, (train_dl, valid_dl), F.cross_entropy, metrics={"acc": accuracy})
    lr = learn.lr_find()          # plots loss against LR, leaves the Learner as it was
    learn.fit(3, lr)              # one-cycle schedule; prints one line per epoch; learn.history
    learn.plot_losses(); learn.save("model.pt")
    learn.load("model.pt"); learn.fit(3, lr, start_epoch=learn.epoch)   # resume an interrupted fit

The loop is `fit -> one_epoch -> one_batch -> step`, each level wrapped in its events (before_, after_,
cleanup_; see lessonlib.engine.callbacks.with_events); the rest are callbacks (history, schedule, NaN check,
gradient clipping, distributed training, the LR finder) and lessonlib.engine.checkpoint. Runs on cuda, mps or
cpu, and unchanged under `torchrun` with DistributedDataParallel (see lessonlib.engine.distributed).
"""

import math
from functools import partial

import pandas as pd
import torch
from torch import nn

from lessonlib.core import default_device, eval_outputs, n_batches, progress, to_device
from lessonlib.engine import distributed as ddp
from lessonlib.engine.callbacks import (
    CancelBatchException,
    Distributed,
    NanCheck,
    Recorder,
    Scheduler,
    with_events,
)
from lessonlib.engine.checkpoint import load_checkpoint, save_checkpoint
from lessonlib.engine.lr_finder import lr_find
from lessonlib.engine.numerics import amp_dtype, autocast
from lessonlib.engine.schedule import get_schedule, schedule_name


def accuracy(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Share of rows whose highest score is the target class."""
    return (pred.argmax(dim=-1) == target).float().mean()


def adamw(groups, lr: float, weight_decay: float = 0.01, fused: bool = False) -> torch.optim.AdamW:
    """The Learner's default optimizer: AdamW with betas (0.9, 0.99), fast.ai's choice, and decoupled
    weight decay. `fused` runs torch's fused kernel: one pass over each parameter instead of one per
    arithmetic step (the same update, rounded differently):
    `opt_func=functools.partial(adamw, weight_decay=0.1, fused=True)`."""
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99), weight_decay=weight_decay, fused=fused)


def param_groups(groups: list[nn.Module]) -> list[dict]:
    """One optimizer parameter group per layer group; a tied weight goes to the first that holds it."""
    out, seen = [], set()
    for g in groups:
        out.append({"params": [p for p in g.parameters() if id(p) not in seen]})
        seen.update(id(p) for p in out[-1]["params"])
    return out


def group_lrs(lr, n_groups: int) -> list[float]:
    """One LR per layer group: a float for every group, or a list with one per group (spread them
    with `lessonlib.text.fine_tune.discriminative_lrs`)."""
    if isinstance(lr, (list, tuple)):
        if len(lr) != n_groups:
            raise ValueError(f"got {len(lr)} learning rates for {n_groups} layer groups")
        return [float(v) for v in lr]
    return [float(lr)] * n_groups


def _rank0_bars() -> dict:
    """Progress-bar options: bars on rank 0 only (and only if LESSONLIB_PROGRESS allows them)."""
    return {} if ddp.is_main() else {"disable": True}


def _order(cb) -> int:
    return getattr(cb, "order", 0)


class Learner:
    """Trains `model` on the first loader of `dls = (train_dl, valid_dl)`, validating on the second
    (None: no validation) after every epoch.

    Batches are `(x, y)`; the loss is `loss_func(model(x), y)`. `metrics` maps names to callables
    `(pred, target) -> scalar`, averaged over validation targets (weighted by `target.numel()`).
    `opt_func(param_groups, lr=...)` builds the optimizer (default `adamw`: weight decay 0.01); `amp`
    see `lessonlib.engine.numerics.amp_dtype`; `callbacks` see `lessonlib.engine.callbacks.Callback` (gradient
    clipping is one: `GradientClip(max_norm)`). `model` is always the module you gave; under torchrun
    the loop calls it through DistributedDataParallel during a fit (the `Distributed` callback).
    """

    def __init__(self, model: nn.Module, dls, loss_func, metrics=None, opt_func=adamw, callbacks=(),
                 device=None, amp=None):
        if loss_func is None:
            raise ValueError("Learner needs a loss_func, e.g. torch.nn.functional.cross_entropy")
        if not isinstance(dls, (tuple, list)) or len(dls) != 2:
            raise ValueError("dls must be (train_dl, valid_dl), valid_dl None for no validation")
        launched = ddp.launched_by_torchrun() or ddp.is_distributed()
        self.device = torch.device(device) if device else (
            ddp.local_device() if launched else default_device())
        self.model = model.to(self.device)
        self.dls = tuple(dls)  # during a fit under torchrun: this process's shards (see Distributed)
        self.loss_func, self.metrics = loss_func, dict(metrics or {})
        self.amp_dtype = amp_dtype(amp, self.device)
        # fp16 needs its gradients scaled; disabled, the scaler passes everything straight through
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.opt = opt_func(param_groups(self.layer_groups()), lr=1e-3)
        self.recorder = Recorder()
        nan_check = NanCheck(every=1 if self.device.type == "cpu" else 32)  # a GPU read waits for the GPU
        self.distributed = Distributed() if launched else None
        self.callbacks = [self.recorder, nan_check, *([self.distributed] if launched else []), *callbacks]
        self.epoch, self.iter, self.n_iter, self.start_epoch = 0, 0, 0, 0
        self.training, self.show, self.fit_args = False, False, None
        self.sum_dtype = torch.float32 if self.device.type == "mps" else torch.float64  # mps has no float64

    @property
    def train_dl(self):
        return self.dls[0]

    @property
    def valid_dl(self):
        return self.dls[1]

    # ---- the loop ------------------------------------------------------------------------------------
    def fit(self, epochs: int, lr=1e-3, schedule="one_cycle", show: bool = True, start_epoch: int = 0,
            checkpoint=None, callbacks=()) -> None:
        """Train for `epochs` epochs with peak LR `lr` (a float, or a list with one per layer group).

        The schedule spans all `epochs`; `start_epoch` resumes inside it after `load`
        (`learn.fit(2, lr, start_epoch=learn.epoch)`). With `checkpoint`, saves there after every epoch.
        `callbacks` join the Learner's for this fit only. Whatever happens, `cleanup_fit` runs and the
        Learner leaves training mode (`learn.training` False).
        """
        if not 0 <= start_epoch < epochs:
            raise ValueError(f"start_epoch={start_epoch} must be in [0, epochs={epochs})")
        lrs = group_lrs(lr, len(self.opt.param_groups))
        args = {"epochs": epochs, "lr": lrs, "schedule": schedule_name(schedule)}
        if start_epoch > 0 and self.fit_args not in (None, args):
            raise ValueError(f"resuming a run begun as fit({self.fit_args}); call fit with the same epochs, "
                             f"lr and schedule (got {args}) so the schedule continues where it stopped")
        for dl, name in zip(self.dls, ("train_dl", "valid_dl"), strict=True):
            if dl is not None:
                n_batches(dl, name)
        self.fit_args, self.show, self.start_epoch = args, show, start_epoch
        added = [Scheduler(lrs, get_schedule(schedule), epochs), *callbacks]
        self.callbacks += added
        self.callbacks.sort(key=_order)
        try:
            self._fit(epochs, checkpoint)
        finally:
            self.training = False
            for cb in added:
                self.callbacks.remove(cb)

    @with_events("fit")
    def _fit(self, epochs: int, checkpoint) -> None:
        self.n_iter = n_batches(self.train_dl, "train_dl")  # after before_fit: this process's shard
        for epoch in progress(range(self.start_epoch, epochs), desc="epoch", **_rank0_bars()):
            self.epoch, self.training = epoch, True
            self.model.train()
            self.one_epoch()
            self.epoch = epoch + 1
            if checkpoint is not None:
                self.save(checkpoint)

    @with_events("epoch")
    def one_epoch(self) -> None:
        """The training batches, then the validation loader scored into `valid_stats`."""
        # iter() here: tqdm.auto would otherwise start the loader twice (and draw its seeds twice)
        batches = progress(iter(self.train_dl), total=self.n_iter, desc="train", **_rank0_bars())
        for self.iter, self.batch in enumerate(batches):
            self.one_batch()
        self.valid_stats = self.evaluate() if self.valid_dl is not None else {"loss": math.nan}

    @with_events("batch")
    def one_batch(self) -> None:
        """Forward, loss and `step` on `learn.batch` (which `before_batch` callbacks may replace)."""
        x, self.y = to_device(self.batch, self.device)
        forward = self.model if self.distributed is None else self.distributed.wrapped
        with autocast(self.device, self.amp_dtype):
            self.pred = forward(x)
            self.loss = self.loss_func(self.pred, self.y)
        self.callback("after_loss")
        self.step()

    def step(self) -> None:
        """Backward pass and optimizer step. The fp16 scaler (a pass-through otherwise) scales the loss
        and unscales the gradients again, so `after_backward` callbacks (clipping among them) see true
        ones. Gradients left by a batch cancelled after its backward pass are cleared first."""
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(self.loss).backward()
        self.scaler.unscale_(self.opt)
        self.callback("after_backward")
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)

    def callback(self, event: str) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, event, None)
            if fn is not None:
                fn(self)

    # ---- evaluation ----------------------------------------------------------------------------------
    def _batches_eval(self, dl=None, model=None):
        """`eval_outputs` of `model` (by default the Learner's) over `dl` (by default the validation
        loader), with the callbacks told: `before_validate` once, `before_batch` before every batch."""
        if dl is None and self.valid_dl is None:
            raise ValueError("no loader to evaluate: pass one, or give the Learner a valid_dl")
        dl = dl if dl is not None else self.valid_dl
        n_batches(dl, "the loader")
        self.training = False
        self.callbacks.sort(key=_order)
        self.callback("before_validate")

        def batches():
            for self.batch in dl:
                try:
                    self.callback("before_batch")
                except CancelBatchException:
                    continue
                yield self.batch

        return eval_outputs(model if model is not None else self.model, batches(), self.device,
                            partial(autocast, self.device, self.amp_dtype))

    def evaluate(self, dl=None) -> dict:
        """{"loss": .., <metric>: ..} over `dl` (the validation loader by default), weighted by batch
        size and summed across processes."""
        sums = torch.zeros(len(self.metrics) + 2, dtype=self.sum_dtype, device=self.device)
        for pred, y in self._batches_eval(dl):
            self.pred, self.y = pred, y
            with autocast(self.device, self.amp_dtype):
                self.loss = self.loss_func(self.pred, self.y)
                self.callback("after_loss")
            values = [self.loss, *[m(self.pred, self.y) for m in self.metrics.values()]]
            sums[:-1] += torch.stack([torch.as_tensor(v, dtype=self.sum_dtype, device=self.device)
                                      for v in values]) * self.y.numel()
            sums[-1] += self.y.numel()
        sums = ddp.all_reduce_sum(sums).cpu()
        return dict(zip(["loss", *self.metrics], (sums[:-1] / sums[-1]).tolist(), strict=True))

    def get_preds(self, dl=None, model=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(predictions, targets) over `dl`, concatenated on the CPU (the model's first output if it
        returns a tuple). `model`: another module to evaluate the same way, e.g. the trained model
        inside a wrapper that adjusts its outputs."""
        preds, targets = [], []
        for pred, y in self._batches_eval(dl, model):
            pred = pred[0] if isinstance(pred, (tuple, list)) else pred
            preds.append(pred.float().cpu())
            targets.append(y.cpu())
        return torch.cat(preds), torch.cat(targets)

    # ---- layer groups, freezing, learning rates ----------------------------------------------------
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

    def freeze_to(self, n: int) -> None:
        """Freeze layer groups [:n] (no gradients, no updates) and unfreeze the rest: -1 trains only the
        last group, 0 trains everything."""
        groups = self.layer_groups()
        n = n % len(groups) if n < 0 else n
        for i, g in enumerate(groups):
            for p in g.parameters():
                p.requires_grad_(i >= n)

    # ---- history, LR finder, checkpoints -----------------------------------------------------------
    @property
    def history(self) -> pd.DataFrame:
        """One row per epoch: epoch, train_loss, valid_loss, each metric, seconds (and columns other
        callbacks log)."""
        return pd.DataFrame(self.recorder.rows)

    def plot_losses(self, ax=None) -> None:
        """Training loss per batch (smoothed) and validation loss at each epoch's end."""
        self.recorder.plot(ax)

    def lr_find(self, start_lr: float = 1e-7, end_lr: float = 10.0, num_it: int = 100, show: bool = True,
                ax=None) -> float:
        """See `lessonlib.engine.lr_finder.lr_find`: a suggested LR, with the model left as it was."""
        return lr_find(self, start_lr, end_lr, num_it, show, ax)

    def save(self, path):
        """Everything an exact resume needs, written atomically (see `lessonlib.engine.checkpoint`)."""
        return save_checkpoint(self, path)

    def load(self, path) -> "Learner":
        """Restore what `save` wrote; continue with `fit(epochs, lr, start_epoch=learn.epoch)`."""
        load_checkpoint(self, path)
        return self
