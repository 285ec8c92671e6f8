"""TrainConfig and build_learner: the one way every recipe builds its Learner."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lessonlib.core import seed_everything
from lessonlib.dropout import MLP, DropoutRun, train_run
from lessonlib.engine.callbacks import GradientClip
from lessonlib.engine.learner import accuracy
from lessonlib.engine.numerics import PRECISION_ENV, precision_amp
from lessonlib.engine.training import TrainConfig, build_learner, with_train
from lessonlib.text.classifier import ClassifierConfig, TextClassifier
from lessonlib.text.fine_tune import FineTuneConfig, classifier_learner
from lessonlib.text.lm import LM_PRESETS, LMConfig, LMData, lm_learner


def clips(learn) -> list:
    return [cb.max_norm for cb in learn.callbacks if isinstance(cb, GradientClip)]


def test_build_learner_trains_with_fused_adamw_the_configs_decay_clipping_and_precision(two_groups, loaders):
    train = TrainConfig(epochs=1, lr=1e-2, bs=32, wd=0.1, clip=0.5, precision="bf16")
    learn = build_learner(two_groups(), loaders(), F.cross_entropy, train, device="cpu")
    assert isinstance(learn.opt, torch.optim.AdamW)
    assert learn.opt.defaults["fused"] and learn.opt.defaults["weight_decay"] == 0.1
    assert clips(learn) == [0.5] and learn.callbacks[-1].max_norm == 0.5  # after the caller's callbacks
    assert learn.amp_dtype == torch.bfloat16
    plain = build_learner(two_groups(), loaders(), F.cross_entropy, TrainConfig(epochs=1, lr=1e-2, bs=32),
                          device="cpu")
    assert clips(plain) == [] and plain.amp_dtype is None  # no clip; "auto" is fp32 on a CPU
    learn.fit(1, train.lr, show=False)  # the fused step runs


def test_precision_names_the_learners_amp(monkeypatch):
    assert [precision_amp(p) for p in ("auto", "fp32", "bf16", "fp16")] == [None, False, "bf16", "fp16"]
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    assert precision_amp("native", "cpu") is False
    monkeypatch.setenv(PRECISION_ENV, "bf16")
    assert precision_amp("native", "cpu") == "bf16"
    with pytest.raises(ValueError, match="precision='half'.*'native'"):
        TrainConfig(epochs=1, lr=1e-2, bs=8, precision="half")


def test_with_train_changes_only_the_training_fields():
    cfg = LM_PRESETS["sample"]
    faster = with_train(cfg, lr=3e-3)
    assert faster.train.lr == 3e-3 and faster.train.epochs == cfg.train.epochs
    assert faster.emb_size == cfg.emb_size and cfg.train.lr == 0.01  # the preset is untouched
    with pytest.raises(TypeError):
        with_train(cfg, emb_size=4)  # a model field is not a training field


def tiny_lm_data(vocab) -> LMData:
    rng = np.random.default_rng(0)
    ids = [rng.integers(4, len(vocab), 40).astype(np.int32) for _ in range(6)]
    return LMData([], [], vocab, ids[:4], ids[4:])


def first_weight(learn) -> torch.Tensor:
    return next(learn.model.parameters()).detach().clone()


def test_the_recipes_builders_leave_seeding_to_the_caller(small_vocab, saved_lm_encoder, toy_data, tmp_path):
    vocab = small_vocab()
    lm_cfg = LMConfig(emb_size=8, n_hid=12, n_layers=1, bptt=8, jitter=2,
                      train=TrainConfig(epochs=1, lr=1e-2, bs=2))
    path, _ = saved_lm_encoder(tmp_path)
    clf_cfg = FineTuneConfig(model=ClassifierConfig(bptt=4))
    builders = {"lm": lambda: lm_learner(tiny_lm_data(vocab), "awd", lm_cfg, seed=0),
                "classifier": lambda: classifier_learner(path, toy_data(), clf_cfg, pretrained=False, seed=0)}
    for name, build in builders.items():
        seed_everything(0)
        first, second = first_weight(build()), first_weight(build())
        seed_everything(0)
        again = first_weight(build())
        assert not torch.equal(first, second), f"{name}: the builder reseeded torch"
        assert torch.equal(first, again), f"{name}: the caller's seed did not decide the weights"


def test_every_recipe_builds_its_learner_through_build_learner(small_vocab, saved_lm_encoder, toy_data,
                                                               tmp_path):
    lm = lm_learner(tiny_lm_data(small_vocab()), "awd",
                    LMConfig(emb_size=8, n_hid=12, n_layers=1, train=TrainConfig(epochs=1, lr=1e-2, bs=2,
                                                                                 wd=0.2, clip=0.3)))
    path, _ = saved_lm_encoder(tmp_path)
    clf = classifier_learner(path, toy_data(), FineTuneConfig(), pretrained=False, seed=0)
    X, y = torch.rand(40, 6), torch.arange(40) % 2
    mlp = train_run(MLP(6, 4, 0.5), (X, y, X, y), DropoutRun(TrainConfig(epochs=1, lr=1e-2, bs=8, wd=0.05)))
    for learn, wd, clip in [(lm, 0.2, [0.3]), (clf, 0.01, [0.25]), (mlp, 0.05, [])]:
        assert learn.opt.defaults["fused"] and learn.opt.defaults["weight_decay"] == wd
        assert clips(learn) == clip


def test_a_classifier_takes_its_model_config_not_the_run_config(saved_lm_encoder, tmp_path):
    _, enc = saved_lm_encoder(tmp_path)
    with pytest.raises(TypeError, match="ClassifierConfig.*FineTuneConfig holds one as .model"):
        TextClassifier(enc, 8, 1, FineTuneConfig())


def test_the_readme_example_builds_a_learner_that_trains_as_its_config_says(two_groups, loaders):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    example = re.search(r"```python\n(train = TrainConfig.*?)```", readme, re.S).group(1)
    namespace = {"TrainConfig": TrainConfig, "seed_everything": seed_everything,
                 "build_learner": build_learner, "with_train": with_train, "LM_PRESETS": LM_PRESETS, "F": F,
                 "accuracy": accuracy, "model": two_groups(), "train_dl": loaders()[0],
                 "valid_dl": loaders()[1]}
    exec(example, namespace)
    learn, train = namespace["learn"], namespace["train"]
    assert clips(learn) == [train.clip] and learn.opt.defaults["fused"]
    assert namespace["cfg"].train.lr == 3e-3
    learn.fit(train.epochs, train.lr, show=False)
    assert len(learn.history) == train.epochs
