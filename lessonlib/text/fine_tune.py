"""Training the sentiment classifier (notebook 05): one run from the LM's encoder or from scratch,
with one of two fine-tuning recipes (`fine_tuning`): every layer at one rate, or ULMFiT's gradual
unfreezing with discriminative learning rates.
"""

from dataclasses import dataclass

import torch.nn.functional as F

from lessonlib.core import seed_everything
from lessonlib.engine.learner import Learner, accuracy
from lessonlib.engine.training import TrainConfig, build_learner
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
class FineTuneConfig:
    """One classifier run of notebook 05: the model's settings, how it trains (lr: the head's peak
    LR) and the fine-tuning recipe. `with_train(cfg, lr=3e-3)` makes a
    variant."""

    model: ClassifierConfig = ClassifierConfig()
    train: TrainConfig = TrainConfig(epochs=8, lr=1e-2, bs=32, clip=0.25, precision="native")
    recipe: str = "every layer"            # the schedule, one of FINE_TUNING (see `fine_tuning`)


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
                       validate: bool = True, callbacks=()) -> Learner:
    """An untrained classifier of `cfg.model` in a Learner (`build_learner` with `cfg.train`),
    validated after every epoch on `data.valid` (if any, and `validate`); the test reviews are not
    touched (score them once: `learn.evaluate(data.test_loader())`). The encoder starts from the LM
    saved at `lm_file` (`pretrained`) or from fresh weights of the same architecture, drawn from
    torch's RNG: seed it first (`seed_everything`). `seed` orders the training batches."""
    model = classifier_from_lm(lm_file, cfg.model, pretrained=pretrained)
    train_dl, valid_dl = data.loaders(cfg.train.bs, seed)
    dls = (train_dl, valid_dl if validate else None)
    return build_learner(model, dls, F.cross_entropy, cfg.train, metrics={"acc": accuracy},
                         callbacks=callbacks)


def train_classifier(lm_file, data: ClassifierData, cfg: FineTuneConfig, pretrained: bool, seed: int,
                     validate: bool = True, show: bool = True, callbacks=()) -> Learner:
    """Seed torch with `seed`, then train a `classifier_learner` with `cfg.recipe`'s schedule
    (`fine_tuning`) over `cfg.train.epochs` at peak LR `cfg.train.lr`. Returns the Learner
    (`learn.history`: per-epoch validation loss and accuracy; for ULMFiT with a `stage` column)."""
    seed_everything(seed)
    learn = classifier_learner(lm_file, data, cfg, pretrained, seed, validate, callbacks)
    train = cfg.train
    plan = fine_tuning(cfg.recipe, train.lr, train.epochs)
    if plan["stages"] is not None:
        gradual_unfreezing(learn, *plan["stages"], factor=plan["factor"], show=show)
    else:
        lrs = discriminative_lrs(train.lr, len(learn.layer_groups()), plan["factor"])
        learn.fit(train.epochs, lrs, show=show)
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
