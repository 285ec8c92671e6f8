import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lessonlib.engine.callbacks import GradientClip
from lessonlib.engine.learner import Learner, accuracy
from lessonlib.engine.training import with_train
from lessonlib.text.classifier import (
    ClassifierConfig,
    classifier_from_lm,
    predict_logits,
)
from lessonlib.text.classifier_data import (
    ClassificationDataset,
    classification_loader,
)
from lessonlib.text.fine_tune import (
    STAGES,
    FineTuneConfig,
    classifier_run,
    discriminative_lrs,
    fine_tuning,
    gradual_unfreezing,
    train_classifier,
)

PAD = 1


def tuning(model: ClassifierConfig | None = None, recipe: str = "every layer", **train) -> FineTuneConfig:
    """A FineTuneConfig of `model` (None: the default) and `recipe` whose training differs from the
    default by `train`."""
    return with_train(FineTuneConfig(model=model or ClassifierConfig(), recipe=recipe), **train)


def test_discriminative_lrs_divide_by_2_6_per_group():
    assert discriminative_lrs(1.0, 3) == pytest.approx([1 / 2.6**2, 1 / 2.6, 1.0])


def test_gradual_unfreezing_trains_the_head_then_more_then_all(tmp_path, saved_lm_encoder):
    path, _ = saved_lm_encoder(tmp_path)
    model = classifier_from_lm(path, ClassifierConfig(bptt=4))
    rng = np.random.default_rng(0)
    ids = [np.r_[2, rng.integers(7, 16, size=rng.integers(3, 12))] for _ in range(24)]
    ds = ClassificationDataset(ids, np.arange(24) % 2)
    dl = classification_loader(ds, bs=8, pad_idx=model.vocab.pad_id, train=True)
    learn = Learner(model, (dl, classification_loader(ds, 8, model.vocab.pad_id, train=False)),
                    F.cross_entropy, metrics={"acc": accuracy}, callbacks=[GradientClip(0.25)], device="cpu")
    groups = model.layer_groups()
    before = [[p.detach().clone() for p in g.parameters()] for g in groups]
    changed = []
    for epochs in [(1, 0, 0), (0, 1, 0), (0, 0, 1)]:
        histories = gradual_unfreezing(learn, lrs=(1e-2, 1e-2, 1e-2), epochs=epochs, show=False)
        assert [name for name, _ in histories] == [STAGES[epochs.index(1)]]
        assert len(histories[0][1]) == 1  # one epoch
        changed.append([not all(torch.equal(a, b) for a, b in zip(old, g.parameters(), strict=True))
                        for old, g in zip(before, groups, strict=True)])
        before = [[p.detach().clone() for p in g.parameters()] for g in groups]
    assert changed == [[False, False, False, True], [False, False, True, True], [True, True, True, True]]


def test_fine_tuning_recipes_share_the_epochs_and_name_their_schedule():
    assert fine_tuning("every layer", 1e-2, 6) == {"factor": 1.0, "stages": None}
    ulmfit = fine_tuning("ULMFiT", 1e-2, 6)
    lrs, epochs = ulmfit["stages"]
    assert ulmfit["factor"] == 2.6 and sum(epochs) == 6 and epochs[:2] == (1, 1)
    assert lrs == pytest.approx((1e-2, 5e-3, 2.5e-3))  # each stage's head LR lower than the last
    with pytest.raises(ValueError, match="at least 3 epochs"):
        fine_tuning("ULMFiT", 1e-2, 2)
    with pytest.raises(ValueError, match="choose one of"):
        fine_tuning("ulmfit", 1e-2, 6)


def test_train_classifier_validates_on_the_valid_split_and_never_reads_test(tmp_path, toy_data,
                                                                            saved_lm_encoder):
    path, _ = saved_lm_encoder(tmp_path)
    data = toy_data()
    data.test = None  # any use of the test set would fail
    cfg = tuning(model=ClassifierConfig(bptt=4), epochs=2, bs=8)
    learn = train_classifier(path, data, cfg, pretrained=True, seed=0, show=False)
    assert len(learn.history) == 2 and learn.history["acc"].notna().all()
    assert learn.history["acc"].iloc[-1] == pytest.approx(learn.evaluate()["acc"])
    quick = dict(cfg=tuning(epochs=1, bs=8), pretrained=False, seed=0, show=False)
    learn = train_classifier(path, toy_data(valid=False), **quick)
    assert learn.valid_dl is None and len(learn.history) == 1
    assert train_classifier(path, toy_data(), validate=False, **quick).valid_dl is None
    ulmfit = tuning(model=ClassifierConfig(bptt=4), recipe="ULMFiT", epochs=4, bs=8)
    staged = train_classifier(path, toy_data(), ulmfit, pretrained=True, seed=0, show=False)
    # every stage's epochs, numbered on, each with its stage
    assert staged.history["epoch"].tolist() == [0, 1, 2, 3]
    assert staged.history["stage"].tolist() == [STAGES[0], STAGES[1], STAGES[2], STAGES[2]]
    assert staged.history["acc"].notna().all()


def test_train_classifier_starts_from_the_lm_or_from_scratch(tmp_path, toy_data, saved_lm_encoder):
    path, enc = saved_lm_encoder(tmp_path)
    seen = {}

    class FirstWeights:
        def before_fit(self, learn):
            seen[len(seen)] = learn.model.encoder.embedding.weight.detach().clone()

    for pretrained in (True, False):
        train_classifier(path, toy_data(), tuning(epochs=1, bs=8), pretrained=pretrained, seed=0,
                         show=False, callbacks=[FirstWeights()])
    assert torch.equal(seen[0], enc.embedding.weight) and not torch.equal(seen[1], enc.embedding.weight)


@pytest.mark.parametrize(("recipe", "factor"), [("every layer", 1.0), ("ULMFiT", 2.6)])
def test_train_classifier_passes_the_recipes_lr_factor_to_every_layer_group(tmp_path, recipe, factor,
                                                                            toy_data, saved_lm_encoder):
    path, _ = saved_lm_encoder(tmp_path)
    peaks = []

    class PeakLRs:  # records each parameter group's highest LR during the run
        def after_loss(self, learn):
            lrs = [g["lr"] for g in learn.opt.param_groups]
            peaks[:] = lrs if not peaks else [max(a, b) for a, b in zip(peaks, lrs, strict=True)]

    cfg = tuning(model=ClassifierConfig(bptt=4), recipe=recipe, lr=1e-2, epochs=3, bs=4)
    train_classifier(path, toy_data(8), cfg, pretrained=True, seed=0, show=False, callbacks=[PeakLRs()])
    ratios = [b / a for a, b in zip(peaks[:-1], peaks[1:], strict=True)]
    if recipe == "every layer":
        assert peaks[-1] == pytest.approx(1e-2, rel=0.05)
    else:  # ULMFiT's stages are one epoch each here, too short for the one-cycle to reach its peak
        assert peaks[-1] <= 1e-2
    assert ratios == pytest.approx([factor] * len(ratios), rel=1e-6)


def test_classifier_run_returns_history_one_test_score_and_weights_on_request(tmp_path, toy_data,
                                                                              saved_lm_encoder):
    path, _ = saved_lm_encoder(tmp_path)
    data = toy_data()
    run = classifier_run(path, data, tuning(epochs=2, bs=8), True, seed=0, keep_weights=True)
    assert len(run["history"]) == 2 and run["history"]["acc"].notna().all()
    model = classifier_from_lm(path, pretrained=False)
    model.load_state_dict(run["weights"])
    logits, targets, index = predict_logits(model, data.test_loader(bs=4))
    # the run scored in bf16 where the CPU has it, predict_logits in fp32: one review may flip
    right = (logits.argmax(1) == targets).float().mean().item()
    assert run["test_acc"] == pytest.approx(right, abs=1.01 / 16)
    assert sorted(index.tolist()) == list(range(len(data.test)))
    assert torch.equal(targets, torch.as_tensor(data.test.labels[index]))
    assert "weights" not in classifier_run(path, data, tuning(epochs=1, bs=8), False, seed=0)
    staged = classifier_run(path, data, tuning(recipe="ULMFiT", epochs=3, bs=8), True, seed=0)
    assert len(staged["history"]) == 3 and staged["history"]["stage"].tolist() == list(STAGES)


def test_a_classifier_trained_by_train_classifier_reloads_with_its_config(tmp_path, toy_data,
                                                                          saved_lm_encoder):
    from lessonlib.text.classifier import load_classifier, save_classifier

    path, _ = saved_lm_encoder(tmp_path)
    cfg = tuning(model=ClassifierConfig(bptt=4, max_len=30, drop_mult=0.5), epochs=1, bs=8)
    learn = train_classifier(path, toy_data(), cfg, pretrained=True, seed=0, show=False)
    again = load_classifier(save_classifier(tmp_path / "clf.pt", learn.model, path))
    assert again.config == ClassifierConfig(drop_mult=0.5, bptt=4, max_len=30)
    for text in ["great great fun", "boring"]:
        assert again.predict(text) == pytest.approx(learn.model.predict(text))


def test_after_gradual_unfreezing_the_losses_plot_and_every_layer_trains(tmp_path, toy_data,
                                                                         saved_lm_encoder):
    import matplotlib.pyplot as plt

    path, _ = saved_lm_encoder(tmp_path)
    data = toy_data()
    learn = Learner(classifier_from_lm(path, ClassifierConfig(bptt=4)), data.loaders(8, 0), F.cross_entropy,
                    device="cpu")
    n = len(learn.dls[0])
    gradual_unfreezing(learn, lrs=(1e-2, 1e-2, 1e-2), epochs=(1, 2, 0), show=False)
    ax = plt.subplots()[1]
    learn.plot_losses(ax=ax)
    train, valid = ax.get_lines()
    assert len(train.get_xdata()) == 3 * n and list(valid.get_xdata()) == [n, 2 * n, 3 * n]
    assert list(valid.get_ydata()) == learn.history["valid_loss"].tolist()
    assert all(p.requires_grad for p in learn.model.parameters())  # a skipped last stage unfreezes too


def test_gradual_unfreezing_with_no_epochs_at_all_is_an_error_not_an_empty_history(make_learner):
    learn = make_learner()
    learn.fit(1, 1e-2, show=False)
    with pytest.raises(ValueError, match="nothing to train"):
        gradual_unfreezing(learn, epochs=(0, 0, 0), show=False)
    assert len(learn.history) == 1
