"""How a recipe trains, in one config, and the one factory that turns it into a Learner.

Every lesson's run config (the LM's, the classifier's, the Rossmann network's, notebook 01's networks')
holds a `TrainConfig` beside its model's config, and every recipe builds its Learner with
`build_learner`: AdamW (torch's fused kernel) with `wd`, gradient clipping at `clip`, autocast as
`precision` says. The factory does not seed: the caller seeds torch before building the model.

    train = TrainConfig(epochs=3, lr=1e-2, bs=64, clip=0.5)
    seed_everything(42)
    learn = build_learner(Net(), (train_dl, valid_dl), F.cross_entropy, train, metrics={"acc": accuracy})
    learn.fit(train.epochs, train.lr)
"""

from dataclasses import dataclass, replace
from functools import partial

from lessonlib.engine.callbacks import GradientClip
from lessonlib.engine.learner import Learner, adamw
from lessonlib.engine.numerics import check_precision, precision_amp


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How one run trains. `dataclasses.replace(train, lr=3e-3)` makes a variant."""

    epochs: int
    lr: float                              # peak LR of the one-cycle schedule (or the constant LR)
    bs: int | None                         # training batch size (None: the whole training set, where
                                           # the loader allows it)
    wd: float = 0.01                       # AdamW's decoupled weight decay
    clip: float | None = None              # max global gradient norm (None: no clipping)
    precision: str = "auto"                # see lessonlib.engine.numerics.precision_amp

    def __post_init__(self):
        check_precision(self.precision)


def build_learner(model, dls, loss_func, train: TrainConfig, metrics=None, callbacks=(),
                  device=None) -> Learner:
    """`model` in a Learner over `dls = (train_dl, valid_dl)` that trains as `train` says: AdamW with
    weight decay `train.wd` (fused: one pass over each parameter), the gradient norm clipped at
    `train.clip` after every other callback's `after_backward`, autocast per `train.precision`."""
    clip = [GradientClip(train.clip)] if train.clip is not None else []
    return Learner(model, dls, loss_func, metrics=metrics,
                   opt_func=partial(adamw, weight_decay=train.wd, fused=True),
                   callbacks=[*callbacks, *clip], device=device,
                   amp=precision_amp(train.precision, device))


def with_train(cfg, **changes):
    """`cfg`, a run config that holds a `TrainConfig` as `.train`, with those training fields changed:
    `with_train(LM_PRESETS["sample"], lr=3e-3)`."""
    return replace(cfg, train=replace(cfg.train, **changes))
