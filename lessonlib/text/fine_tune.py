"""Training the sentiment classifier (notebook 05): one run from the LM's encoder or from scratch,
with one of two fine-tuning recipes (`fine_tuning`): every layer at one rate, or ULMFiT's gradual
unfreezing with discriminative learning rates.
"""

from dataclasses import dataclass
from functools import partial

import torch.nn.functional as F

from lessonlib.core import seed_everything
from lessonlib.engine.callbacks import GradientClip
from lessonlib.engine.learner import Learner, accuracy, adamw
from lessonlib.engine.numerics import training_amp
from lessonlib.text.classifier import ClassifierConfig, classifier_from_lm
from lessonlib.text.classifier_data import ClassifierData

ULMFIT_FACTOR = 2.6  # each lower layer group's LR this many times less than the one above (ULMFiT)


def discriminative_lrs(lr: float, n_groups: int, factor: float = ULMFIT_FACTOR) -> list[float]:
    """ULMFiT's learning rates: the last group (the head) at `lr`, each lower group `factor` times less."""
    return [lr / factor ** (n_groups - 1 - i) for i in range(n_groups)]


STAGES = ("head", "+ last layer", "all layers")


def gradual_unfreezing(learn, lrs=(2e-2, 1e-2, 1e-3), epochs=(1, 1, 2), factor: float = ULMFIT_FACTOR,
                       show: bool = True) -> list:
    """ULMFiT fine-tuning through the Learner: train the head, then also the last encoder layer, then
    everything; each stage a one-cycle fit of `epochs[k]` epochs whose peak LR `lrs[k]` goes to the
    head, each lower layer group getting `factor` times less. A stage with 0 epochs is skipped; every
    layer is left trainable. Returns [(stage name, its history)] for the stages run; afterwards the
    Recorder holds every stage in order: `learn.history` (epochs numbered on from one stage to the
    next, with a `stage` column) and the batch losses behind `learn.plot_losses()`."""
    if len(lrs) != 3 or len(epochs) != 3:
        raise ValueError("give one learning rate and one epoch count per stage: head, last layer, all")
    if not any(epochs):
        raise ValueError(f"every stage has 0 epochs ({epochs}): nothing to train")
    n = len(learn.layer_groups())
    histories, rows, losses, ends = [], [], [], []
    for name, freeze, lr, n_epochs in zip(STAGES, (-1, -2, 0), lrs, epochs, strict=True):
        if n_epochs == 0:
            continue
        learn.freeze_to(freeze)
        learn.fit(n_epochs, discriminative_lrs(lr, n, factor), show=show)
        rec = learn.recorder
        histories.append((name, learn.history.copy()))
        rows += [{**row, "epoch": len(rows) + i, "stage": name} for i, row in enumerate(rec.rows)]
        ends += [len(losses) + end for end in rec.epoch_ends]
        losses += rec.batch_losses
    learn.freeze_to(0)
    learn.recorder.rows, learn.recorder.batch_losses, learn.recorder.epoch_ends = rows, losses, ends
    return histories


FINE_TUNING = ("every layer", "ULMFiT")


@dataclass(frozen=True, kw_only=True)
class FineTuneConfig(ClassifierConfig):
    """One classifier run of notebook 05: the model's settings (the `ClassifierConfig` fields) and
    how it trains. `dataclasses.replace(cfg, lr=3e-3)` makes a variant."""

    recipe: str = "every layer"            # the schedule, one of FINE_TUNING (see `fine_tuning`)
    lr: float = 1e-2                       # peak LR (the head's)
    epochs: int = 8
    bs: int = 32
    clip: float | None = 0.25              # max global gradient norm (None: no clipping)
    wd: float = 0.01                       # AdamW's decoupled weight decay


def fine_tuning(recipe: str, lr: float, epochs: int) -> dict:
    """`train_classifier`'s schedule for a named recipe of `epochs` epochs in all, peak LR `lr`:
    "every layer": every layer trains from the first step at the one rate `lr` (one one-cycle);
    "ULMFiT": gradual unfreezing (the head for an epoch, then also the last LSTM layer for an epoch,
    then every layer for the rest), each stage its own one-cycle whose head LR falls from `lr` to
    `lr/2` to `lr/4` (as the 2018 lesson's stages do), each lower layer group 2.6 times less."""
    if recipe == "every layer":
        return {"factor": 1.0, "stages": None}
    if recipe == "ULMFiT":
        if epochs < 3:
            raise ValueError(f"ULMFiT's three stages need at least 3 epochs, got {epochs}")
        return {"factor": ULMFIT_FACTOR, "stages": ((lr, lr / 2, lr / 4), (1, 1, epochs - 2))}
    raise ValueError(f"unknown fine-tuning recipe {recipe!r}: choose one of {FINE_TUNING}")


def classifier_learner(lm_file, data: ClassifierData, cfg: FineTuneConfig, pretrained: bool, seed: int,
                       validate: bool = True, callbacks=(), amp=None) -> Learner:
    """An untrained classifier of `cfg` in a Learner (AdamW, gradient clipping), validated after every
    epoch on `data.valid` (if any, and `validate`); the test reviews are not touched (score them once:
    `learn.evaluate(data.test_loader())`). The encoder starts from the LM saved at `lm_file`
    (`pretrained`) or from fresh weights of the same architecture. `amp`: None = `training_amp()`
    (bf16 where the hardware computes it natively, unless $LESSONLIB_PRECISION forces one)."""
    seed_everything(seed)
    model = classifier_from_lm(lm_file, cfg, pretrained=pretrained)
    train_dl, valid_dl = data.loaders(cfg.bs, seed)
    dls = (train_dl, valid_dl if validate else None)
    return Learner(model, dls, F.cross_entropy, metrics={"acc": accuracy},
                   opt_func=partial(adamw, weight_decay=cfg.wd, fused=True),
                   callbacks=[*callbacks, GradientClip(cfg.clip)], amp=training_amp() if amp is None else amp)


def train_classifier(lm_file, data: ClassifierData, cfg: FineTuneConfig, pretrained: bool, seed: int,
                     validate: bool = True, show: bool = True, callbacks=()) -> Learner:
    """A `classifier_learner` trained with `cfg.recipe`'s schedule (`fine_tuning`) over `cfg.epochs`
    at peak LR `cfg.lr`. Returns the Learner (`learn.history`: per-epoch validation loss and accuracy;
    for ULMFiT with a `stage` column)."""
    learn = classifier_learner(lm_file, data, cfg, pretrained, seed, validate, callbacks)
    plan = fine_tuning(cfg.recipe, cfg.lr, cfg.epochs)
    if plan["stages"] is not None:
        gradual_unfreezing(learn, *plan["stages"], factor=plan["factor"], show=show)
    else:
        lrs = discriminative_lrs(cfg.lr, len(learn.layer_groups()), plan["factor"])
        learn.fit(cfg.epochs, lrs, show=show)
    return learn


def classifier_run(lm_file, data: ClassifierData, cfg: FineTuneConfig, pretrained: bool, seed: int,
                   validate: bool = True, keep_weights: bool = False) -> dict:
    """One quiet `train_classifier` run, reduced to what a worker process can send back
    (`run_parallel`): `history` (per-epoch validation accuracy, if `validate`), `test_acc` (the test
    reviews scored once, after training) and, with `keep_weights`, the trained `weights`."""
    learn = train_classifier(lm_file, data, cfg, pretrained, seed, validate, show=False)
    out = {"history": learn.history, "test_acc": learn.evaluate(data.test_loader())["acc"]}
    if keep_weights:
        out["weights"] = learn.model.state_dict()
    return out
