"""What the Learner's loop does besides forward, backward and step: small callbacks, one job each,
and the events they hook into.

The Learner always runs `Recorder` (history and printed table) and `NanCheck`, adds `Distributed`
under torchrun and a `Scheduler` for each fit; `GradientClip` and `GradNorm` are for the caller to add.
A callback ends a batch, an epoch or the whole fit early by raising `CancelBatchException`,
`CancelEpochException` or `CancelFitException` (the LR finder ends its fit so).
"""

import functools
import math
import time

import torch
from torch import nn
from tqdm.auto import tqdm

from lessonlib.engine import distributed as ddp
from lessonlib.engine.checkpoint import get_loader_rngs, set_loader_rngs
from lessonlib.plots import new_axes


class CancelFitException(Exception):
    """Raised by a callback: the fit ends here (`after_fit` skipped, `cleanup_fit` still runs)."""


class CancelEpochException(Exception):
    """Raised by a callback: the rest of this epoch is skipped (validation and `after_epoch` too)."""


class CancelBatchException(Exception):
    """Raised by a callback: the rest of this batch is skipped (in training: raise it before the
    backward pass, in before_batch or after_loss; gradients already computed are discarded at the next
    step). In an evaluation, from before_batch: that batch is left out."""


CANCEL = {"fit": CancelFitException, "epoch": CancelEpochException, "batch": CancelBatchException}


def with_events(name: str):
    """Wraps a Learner method in its events: `before_<name>`, the method, `after_<name>`; a
    `Cancel<Name>Exception` from a callback (or the method) ends it quietly, skipping the rest and
    `after_<name>`; `cleanup_<name>` runs whatever happened, an error included (miniai's control flow).
    Every callback's cleanup runs even if one fails; the error that ended the method is the one
    raised, a failed cleanup's is added to it as a note (or raised itself after a clean run)."""
    def decorate(method):
        @functools.wraps(method)
        def run(learn, *args, **kwargs):
            try:
                learn.callback(f"before_{name}")
                method(learn, *args, **kwargs)
                learn.callback(f"after_{name}")
            except CANCEL[name]:
                pass
            except BaseException as error:
                for failed in cleanup(learn, name):
                    error.add_note(f"and cleanup_{name} failed too: {failed!r}")
                raise
            failures = cleanup(learn, name)
            if failures:
                raise failures[0]
        return run
    return decorate


def cleanup(learn, name: str) -> list[BaseException]:
    """Run every callback's `cleanup_<name>`, each even if an earlier one fails; the failures."""
    failures = []
    for cb in learn.callbacks:
        fn = getattr(cb, f"cleanup_{name}", None)
        if fn is not None:
            try:
                fn(learn)
            except Exception as e:
                failures.append(e)
    return failures


class Callback:
    """Every event is a no-op here; override the ones you need. The Learner calls `cb.event(learn)`
    for each callback, lower `order` first:

    before_fit, before_epoch (its training part starts), before_batch (`learn.batch` may be replaced;
    it is moved to the device afterwards), after_loss (`learn.loss` may be replaced: it is what gets
    backpropagated), after_backward (gradients computed, not yet clipped), after_batch (after the
    optimizer step), before_validate, after_epoch (`learn.valid_stats` holds the validation loss and
    metrics), after_fit. `cleanup_batch`, `cleanup_epoch` and `cleanup_fit` run after each level ends
    however it ends: normally, cancelled, or by an error. `learn.training` tells training batches from
    evaluation ones: evaluation fires before_validate, then before_batch and after_loss per batch.
    """

    order = 0

    def before_fit(self, learn): pass
    def before_epoch(self, learn): pass
    def before_batch(self, learn): pass
    def after_loss(self, learn): pass
    def after_backward(self, learn): pass
    def after_batch(self, learn): pass
    def cleanup_batch(self, learn): pass
    def before_validate(self, learn): pass
    def after_epoch(self, learn): pass
    def cleanup_epoch(self, learn): pass
    def after_fit(self, learn): pass
    def cleanup_fit(self, learn): pass


def set_hypers(opt, lrs, mult: float, mom: float) -> None:
    """Each parameter group's LR to `lr * mult`, and its beta1 (Adam) or momentum (SGD) to `mom`."""
    for group, lr in zip(opt.param_groups, lrs, strict=True):
        group["lr"] = lr * mult
        if "betas" in group:
            group["betas"] = (mom, group["betas"][1])
        elif "momentum" in group:
            group["momentum"] = mom


class Scheduler(Callback):
    """Before each training batch, sets every layer group's LR to its peak in `lrs` times the
    schedule's multiplier, and the momentum it gives; progress runs over all `epochs` of the fit, so
    a resumed fit continues where it stopped."""

    order = -10

    def __init__(self, lrs, schedule, epochs: int):
        self.lrs, self.schedule, self.epochs = lrs, schedule, epochs

    def before_batch(self, learn):
        if learn.training:
            pct = (learn.epoch * learn.n_iter + learn.iter) / (self.epochs * learn.n_iter)
            set_hypers(learn.opt, self.lrs, *self.schedule(pct))


class Recorder(Callback):
    """The fit's history: every training batch's loss (`batch_losses`; `epoch_ends` marks where each
    epoch ends) and one row per epoch (`rows`, shown as `learn.history`) with the training loss
    (averaged over samples and processes), validation loss, metrics and seconds, printed as the epoch
    ends when `fit(show=True)`. Later callbacks add columns to the epoch's row with `log`."""

    order = -5

    def __init__(self):
        self.rows, self.batch_losses, self.epoch_ends = [], [], []
        self.losses, self.sizes, self.start = [], [], 0.0

    def before_fit(self, learn):
        if learn.start_epoch == 0:
            self.rows, self.batch_losses, self.epoch_ends = [], [], []
        if learn.show and ddp.is_main():
            tqdm.write(table_row(["epoch", "train_loss", "valid_loss", *learn.metrics, "time"]))

    def before_epoch(self, learn):
        self.start, self.losses, self.sizes = time.perf_counter(), [], []

    def after_batch(self, learn):
        if learn.training:
            self.losses.append(learn.loss.detach())
            self.sizes.append(learn.y.numel())

    def after_epoch(self, learn):
        losses = torch.stack(self.losses).float().cpu()
        self.batch_losses += losses.tolist()
        self.epoch_ends.append(len(self.batch_losses))
        total = [float(losses @ torch.tensor(self.sizes, dtype=torch.float)), float(sum(self.sizes))]
        sums = ddp.all_reduce_sum(torch.tensor(total, dtype=learn.sum_dtype, device=learn.device)).cpu()
        row = {"epoch": learn.epoch, "train_loss": float(sums[0] / sums[1])}
        stats = dict(learn.valid_stats)
        row["valid_loss"] = stats.pop("loss")
        row.update(stats)
        row["seconds"] = time.perf_counter() - self.start
        self.rows.append(row)
        if learn.show and ddp.is_main():
            values = [row.get(k, math.nan) for k in ["train_loss", "valid_loss", *learn.metrics]]
            tqdm.write(table_row([learn.epoch, *values, f"{row['seconds']:.1f}s"]))  # print, around the bars

    def log(self, **values) -> None:
        """Add columns to the current epoch's row (call from a later callback's `after_epoch`)."""
        self.rows[-1].update(values)

    def plot(self, ax=None) -> None:
        """Training loss per batch (exponentially smoothed) and validation loss at each epoch's end."""
        if not self.batch_losses:
            raise RuntimeError("no losses recorded yet: call fit() first")
        if not ddp.is_main():
            return
        ax = ax or new_axes()
        smooth = smoothed(self.batch_losses)
        ax.plot(range(1, len(smooth) + 1), smooth, label="train (smoothed)")
        valid = [row["valid_loss"] for row in self.rows]
        if any(not math.isnan(v) for v in valid):
            ax.plot(self.epoch_ends, valid, "o-", label="valid")
        ax.set(xlabel="batches", ylabel="loss")
        ax.legend()


def smoothed(values) -> list[float]:
    """Exponential moving average (weight 0.98 on the past) with bias correction, so the first values
    are not pulled toward 0."""
    avg, out = 0.0, []
    for i, v in enumerate(values, 1):
        avg = 0.98 * avg + 0.02 * v
        out.append(avg / (1 - 0.98**i))
    return out


def table_row(values) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4f}" if abs(v) < 1e4 or math.isnan(v) else f"{v:.4g}"
        return str(v)
    return "  ".join(f"{fmt(v):>10}" for v in values)


class NanCheck(Callback):
    """Stops training, before the step that would spread it into the weights, when the loss is NaN
    or infinite, with the epoch, the batch and what to try. Reading a loss waits for the device, so on
    a GPU it looks at `every` losses at once (and at the rest when the epoch's training part ends)."""

    order = 100  # after every callback that changes the loss

    def __init__(self, every: int = 1):
        self.every, self.pending = every, []

    def before_epoch(self, learn):
        self.pending = []

    def after_loss(self, learn):
        if learn.training:
            self.pending.append((learn.iter, learn.loss.detach()))
            if len(self.pending) >= self.every:
                self.check(learn)

    def check(self, learn) -> None:
        pending, self.pending = self.pending, []
        if not pending or (len(pending) == 1 and math.isfinite(pending[0][1].item())):  # the CPU fast path
            return
        losses = torch.stack([loss for _, loss in pending]).float().cpu()
        bad = (~torch.isfinite(losses)).nonzero()
        if len(bad):
            i = int(bad[0])
            lrs = ", ".join(f"{g['lr']:.3g}" for g in learn.opt.param_groups)
            raise FloatingPointError(
                f"loss is {losses[i].item()} at epoch {learn.epoch}, batch {pending[i][0]}: training "
                f"stopped. Lower the learning rate (now {lrs}), bound the gradients with the GradientClip "
                "callback, or "
                "check the inputs for NaN/inf.")

    before_validate = after_epoch = check


class Distributed(Callback):
    """Under torchrun: joins the process group (unless the script already has; it is left when the
    process exits), and for each fit gives each process its shard of the training and validation data
    (`lessonlib.engine.distributed.shard_train`, every process starting from rank 0's loader random
    state, so the shards split one shuffle; a DataLoader's DistributedSampler is seeded by its own
    generator's seed, or torch's, without drawing from either, so a resumed fit shuffles as the
    unbroken one) and trains through the model wrapped in DistributedDataParallel (`wrapped`: it
    averages gradients across processes); the Learner sums the validation metrics over processes. At
    `cleanup_fit`, also after an error, the Learner gets its own loaders back and the wrapper goes.
    The Learner adds it when launched so."""

    order = -20

    def __init__(self):
        self.wrapped, self.dls = None, None

    def before_fit(self, learn):
        ddp.init(learn.device)
        train_dl, valid_dl = self.dls = learn.dls
        set_loader_rngs(train_dl, ddp.broadcast_object(get_loader_rngs(train_dl)))
        generator = getattr(train_dl, "generator", None)
        seed = (generator if generator is not None else torch.default_generator).initial_seed() % 2**31
        seed = ddp.broadcast_object(seed)
        rank, world = ddp.rank(), ddp.world_size()
        learn.dls = (ddp.shard_train(train_dl, rank, world, seed),
                     None if valid_dl is None else ddp.shard_valid(valid_dl, rank, world))
        ids = [learn.device.index] if learn.device.type == "cuda" else None
        self.wrapped = nn.parallel.DistributedDataParallel(learn.model, device_ids=ids)

    def before_epoch(self, learn):
        ddp.set_epoch(learn.train_dl, learn.epoch)  # DistributedSampler reshuffles with the epoch

    def cleanup_fit(self, learn):
        if self.dls is not None:
            learn.dls = self.dls
        self.wrapped, self.dls = None, None


class GradientClip(Callback):
    """Scales the gradients down, when their global norm exceeds `max_norm`, to that norm (None: leaves
    them alone). It runs after every other `after_backward` callback, so those see the true gradients."""

    order = 50

    def __init__(self, max_norm: float | None):
        self.max_norm = max_norm

    def after_backward(self, learn):
        if self.max_norm is not None:
            nn.utils.clip_grad_norm_(learn.model.parameters(), self.max_norm)


class GradNorm(Callback):
    """Records the global gradient norm of every training step, before clipping, in `norms`: what
    `GradientClip` caps, and how often it has to."""

    def __init__(self):
        self.norms: list[float] = []

    def before_fit(self, learn):
        self.norms = []

    def after_backward(self, learn):
        grads = [p.grad for p in learn.model.parameters() if p.grad is not None]
        self.norms.append(float(nn.utils.get_total_norm(grads)))
