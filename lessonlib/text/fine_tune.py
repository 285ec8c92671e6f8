"""Training the sentiment classifier (notebook 05): one run from the LM's encoder or from scratch,
with one of two fine-tuning recipes (`fine_tuning`): every layer at one rate, or ULMFiT's gradual
unfreezing with discriminative learning rates.
"""

from functools import partial

import torch.nn.functional as F

from lessonlib.core import seed_everything
from lessonlib.learner import Learner, accuracy, adamw
from lessonlib.numerics import training_amp
from lessonlib.text.classifier import classifier_from_lm
from lessonlib.text.classifier_data import ClassifierData


def discriminative_lrs(lr: float, n_groups: int, factor: float = 2.6) -> list[float]:
    """ULMFiT's learning rates: the last group (the head) at `lr`, each lower group `factor` times less."""
    return [lr / factor ** (n_groups - 1 - i) for i in range(n_groups)]


STAGES = ("head", "+ last layer", "all layers")


def gradual_unfreezing(learn, lrs=(2e-2, 1e-2, 1e-3), epochs=(1, 1, 2), factor: float = 2.6,
                       show: bool = True) -> list:
    """ULMFiT fine-tuning through the Learner: train the head, then also the last encoder layer, then
    everything; each stage a one-cycle fit of `epochs[k]` epochs whose peak LR `lrs[k]` goes to the
    head, each lower layer group getting `factor` times less. A stage with 0 epochs is skipped.
    Returns [(stage name, its history)] for the stages run; afterwards `learn.history` holds every
    stage's epochs in order (numbered on from one stage to the next, with a `stage` column)."""
    if len(lrs) != 3 or len(epochs) != 3:
        raise ValueError("give one learning rate and one epoch count per stage: head, last layer, all")
    n = len(learn.layer_groups())
    histories, rows = [], []
    for name, freeze, lr, n_epochs in zip(STAGES, (-1, -2, 0), lrs, epochs, strict=True):
        if n_epochs == 0:
            continue
        learn.freeze_to(freeze)
        learn.fit(n_epochs, discriminative_lrs(lr, n, factor), show=show)
        histories.append((name, learn.history.copy()))
        rows += [{**row, "epoch": len(rows) + i, "stage": name} for i, row in enumerate(learn.recorder.rows)]
    learn.recorder.rows = rows
    return histories


FINE_TUNING = ("every layer", "ULMFiT")


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
        return {"factor": 2.6, "stages": ((lr, lr / 2, lr / 4), (1, 1, epochs - 2))}
    raise ValueError(f"unknown fine-tuning recipe {recipe!r}: choose one of {FINE_TUNING}")


def train_classifier(lm_file, data: ClassifierData, pretrained: bool, seed: int, lr: float = 1e-2,
                     epochs: int = 8, factor: float = 1.0, stages=None, bs: int = 32, clip: float = 0.25,
                     wd: float = 0.01, drop_mult: float = 1.0, validate: bool = True, show: bool = True,
                     callbacks=(), amp=None, **model_kwargs):
    """One classifier trained through the Learner, validated after every epoch on `data.valid` (if
    any, and `validate`); the test reviews are not touched (score them once:
    `learn.evaluate(data.test_loader())`).

    The encoder starts from the LM saved at `lm_file` (`pretrained`) or from fresh weights of the same
    architecture. Every layer trains from the start: one-cycle over `epochs` with peak LR `lr` for the
    head, each lower layer group `factor` times less (1.0: one LR for all). With `stages=(lrs, epochs)`,
    ULMFiT's gradual unfreezing instead (see `gradual_unfreezing`). `amp`: None = `training_amp()` (bf16
    where the hardware computes it natively, unless $LESSONLIB_PRECISION forces one). Returns the Learner
    (`learn.history`: per-epoch validation loss and accuracy)."""
    seed_everything(seed)
    model = classifier_from_lm(lm_file, pretrained=pretrained, drop_mult=drop_mult, **model_kwargs)
    train_dl, valid_dl = data.loaders(bs, seed)
    learn = Learner(model, train_dl, valid_dl if validate else None, F.cross_entropy,
                    opt_func=partial(adamw, fused=True), metrics={"acc": accuracy}, clip=clip, wd=wd,
                    callbacks=callbacks, amp=training_amp() if amp is None else amp)
    if stages is not None:
        gradual_unfreezing(learn, *stages, factor=factor, show=show)
    else:
        learn.fit(epochs, discriminative_lrs(lr, len(learn.layer_groups()), factor), show=show)
    return learn


def classifier_run(lm_file, data: ClassifierData, pretrained: bool, seed: int, lr: float, epochs: int,
                   recipe: str = "every layer", bs: int = 32, validate: bool = True,
                   keep_weights: bool = False) -> dict:
    """One `train_classifier` run with a `fine_tuning` recipe, reduced to what a worker process can
    send back (`run_parallel`): `history` (per-epoch validation accuracy, if `validate`), `test_acc`
    (the test reviews scored once, after training) and, with `keep_weights`, the trained `weights`."""
    learn = train_classifier(lm_file, data, pretrained, seed, lr=lr, epochs=epochs, bs=bs, validate=validate,
                             show=False, **fine_tuning(recipe, lr, epochs))
    out = {"history": learn.history, "test_acc": learn.evaluate(data.test_loader())["acc"]}
    if keep_weights:
        out["weights"] = learn.model.state_dict()
    return out
