import math

import matplotlib
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lessonlib.engine.learner import Learner, accuracy, group_lrs

matplotlib.use("Agg")


def test_loss_falls_and_history_has_one_row_per_epoch(capsys, make_learner):
    learn = make_learner()
    before = learn.evaluate()
    assert learn.fit(4, 5e-2) is None  # nothing for Jupyter to display twice
    hist = learn.history
    after = learn.evaluate()
    assert list(hist.columns) == ["epoch", "train_loss", "valid_loss", "acc", "seconds"]
    assert hist["epoch"].tolist() == [0, 1, 2, 3]
    assert after["loss"] < 0.5 * before["loss"] and after["acc"] > 0.9
    assert hist["train_loss"].iloc[-1] < hist["train_loss"].iloc[0]
    assert math.isclose(hist["valid_loss"].iloc[-1], after["loss"], rel_tol=1e-6)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["epoch", "train_loss", "valid_loss", "acc", "time"]
    assert len(lines) == 5 and lines[-1].split()[-1].endswith("s")
    assert lines[-1].split()[2] == f"{after['loss']:.4f}"


def test_constant_lr_fit_is_exactly_a_bare_pytorch_loop(make_learner, params, loaders, two_groups):
    learn = make_learner(seed=0)
    torch.manual_seed(0)
    model, (train_dl, _) = two_groups(), loaders(seed=0)
    model.load_state_dict(learn.model.state_dict())
    torch.manual_seed(5)
    learn.fit(2, 1e-2, schedule="constant", show=False)
    torch.manual_seed(5)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.99), weight_decay=0.01)
    for _ in range(2):
        model.train()
        for x, y in train_dl:
            F.cross_entropy(model(x), y).backward()
            opt.step()
            opt.zero_grad()
        model.eval()
        with torch.no_grad():
            [model(x) for x, _ in learn.valid_dl]  # validation draws no randomness, but runs the model
    assert all(torch.equal(a, b) for a, b in zip(params(model), params(learn.model), strict=True))


def test_show_false_prints_nothing(capsys, make_learner):
    make_learner().fit(1, 1e-2, show=False)
    assert capsys.readouterr().out == ""


def test_frozen_groups_do_not_change_and_unfreeze_restores(make_learner, params):
    learn = make_learner()
    learn.freeze_to(1)
    body, head = params(learn.model.body), params(learn.model.head)
    learn.fit(1, 1e-2, show=False)
    assert all(torch.equal(a, b) for a, b in zip(body, params(learn.model.body), strict=True))
    assert not any(torch.equal(a, b) for a, b in zip(head, params(learn.model.head), strict=True))
    learn.freeze_to(0)
    learn.fit(1, 1e-2, show=False)
    assert not torch.equal(body[0], learn.model.body[0].weight)


def test_discriminative_lrs_reach_the_optimizer(make_learner):
    learn = make_learner()
    seen = []

    class Cb:
        def after_epoch(self, learn):
            seen.append([g["lr"] for g in learn.opt.param_groups])

    learn.callbacks = [Cb()]
    learn.fit(1, [1e-4, 1e-2], schedule="constant", show=False)
    assert seen[-1] == [pytest.approx(1e-4), pytest.approx(1e-2)]
    assert group_lrs(1e-2, 2) == [1e-2, 1e-2]
    with pytest.raises(ValueError, match="2 layer groups"):
        group_lrs([1e-3, 1e-3, 1e-3], 2)


def test_callbacks_see_training_flag_and_can_change_the_loss(make_learner):
    events = []

    class Cb:
        def before_fit(self, learn):
            events.append("fit")

        def before_epoch(self, learn):
            events.append(("epoch", learn.epoch, learn.training))

        def before_validate(self, learn):
            events.append(("validate", learn.training))

        def after_loss(self, learn):
            if learn.training:
                learn.loss = learn.loss + 100.0

    learn = make_learner(callbacks=[Cb()])
    learn.fit(1, 1e-3, show=False)
    assert events == ["fit", ("epoch", 0, True), ("validate", False)]
    assert learn.history["train_loss"][0] > 100 > learn.history["valid_loss"][0]


def test_metrics_are_weighted_by_batch_size_and_match_get_preds(make_learner, make_data):
    learn = make_learner()
    learn.fit(1, 1e-2, show=False)
    ds = make_data(100, seed=5)
    uneven = DataLoader(ds, batch_size=30)  # batches of 30, 30, 30, 10
    preds, targets = learn.get_preds(uneven)
    assert preds.shape == (100, 2) and torch.equal(targets, ds.tensors[1])
    stats = learn.evaluate(uneven)
    assert stats["acc"] == pytest.approx(accuracy(preds, targets).item())
    assert stats["loss"] == pytest.approx(F.cross_entropy(preds, targets).item(), rel=1e-5)


def test_get_preds_evaluates_another_module_the_same_way(make_learner, make_data):
    learn = make_learner()
    learn.fit(1, 1e-2, show=False)
    dl = DataLoader(make_data(40, seed=6), batch_size=16)
    wrapper = nn.Sequential(learn.model, nn.Dropout(0.9))  # dropout shows whether eval mode was set
    learn.model.train()
    preds, _ = learn.get_preds(dl, model=wrapper)
    own, _ = learn.get_preds(dl)
    assert torch.equal(preds, own) and not preds.requires_grad


def test_empty_loader_is_a_clear_error(make_learner, make_data):
    learn = make_learner()
    learn.dls = (DataLoader(make_data(10), batch_size=32, drop_last=True), learn.valid_dl)
    with pytest.raises(ValueError, match="train_dl is empty"):
        learn.fit(1, 1e-2, show=False)
    with pytest.raises(ValueError, match="is empty"):
        learn.evaluate(DataLoader(TensorDataset(torch.zeros(0, 8), torch.zeros(0).long()), batch_size=4))


def test_bad_arguments_are_clear_errors(make_learner, loaders, two_groups):
    with pytest.raises(ValueError, match="loss_func"):
        Learner(two_groups(), loaders(), None)
    with pytest.raises(ValueError, match="train_dl, valid_dl"):
        Learner(two_groups(), loaders()[0], F.cross_entropy)
    with pytest.raises(ValueError, match="valid_dl"):
        Learner(two_groups(), (loaders()[0], None), F.cross_entropy).evaluate()
    with pytest.raises(ValueError, match="fp16"):
        make_learner(amp="fp16")
    with pytest.raises(ValueError, match="start_epoch"):
        make_learner().fit(2, 1e-2, start_epoch=2)


def test_bf16_autocast_on_cpu_trains_like_fp32(make_learner):
    dtypes = set()

    class Spy:
        def after_loss(self, learn):
            dtypes.add(learn.pred.dtype)

    learn = make_learner(amp="bf16", callbacks=[Spy()])
    start = learn.evaluate()["loss"]
    learn.fit(3, 5e-2, show=False)
    fp32 = make_learner()
    fp32.fit(3, 5e-2, show=False)
    assert dtypes == {torch.bfloat16} and make_learner().amp_dtype is None
    assert learn.history["valid_loss"].iloc[-1] < 0.7 * start
    final, final_fp32 = learn.history["valid_loss"].iloc[-1], fp32.history["valid_loss"].iloc[-1]
    assert final == pytest.approx(final_fp32, abs=0.05)


def test_plot_losses_draws_train_and_valid(tmp_path, make_learner):
    import matplotlib.pyplot as plt

    learn = make_learner()
    with pytest.raises(RuntimeError, match="fit"):
        learn.plot_losses()
    learn.fit(2, 1e-2, show=False)
    ax = plt.subplots()[1]
    learn.plot_losses(ax=ax)
    train, valid = ax.get_lines()
    assert len(train.get_xdata()) == 16 and list(valid.get_xdata()) == [8, 16]
    assert list(valid.get_ydata()) == learn.history["valid_loss"].tolist()
    plt.close("all")


def test_tied_weights_sit_in_one_group_only(loaders):
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.out = nn.Linear(8, 8, bias=False), nn.Linear(8, 2)
            self.dec = nn.Linear(8, 8, bias=False)
            self.dec.weight = self.emb.weight

        def forward(self, x):
            return self.out(self.dec(self.emb(x)))

        def layer_groups(self):
            return [self.emb, nn.ModuleList([self.dec, self.out])]

    learn = Learner(Tied(), loaders(), F.cross_entropy)
    first, last = learn.opt.param_groups
    assert first["params"] == [learn.model.emb.weight]
    assert len(last["params"]) == 2 and all(p is not learn.model.emb.weight for p in last["params"])
    learn.fit(1, 1e-2, show=False)
    assert torch.equal(learn.model.dec.weight, learn.model.emb.weight)


def test_a_callback_cancels_a_batch_an_epoch_or_the_fit_and_cleanup_always_runs(make_learner):
    from lessonlib.engine.callbacks import CancelBatchException, CancelEpochException, CancelFitException

    events = []

    class Cancel:
        def __init__(self, event, when, exc):
            self.event, self.when, self.exc = event, when, exc
            setattr(self, event, self.maybe_cancel)

        def maybe_cancel(self, learn):
            if (learn.epoch, learn.iter) == self.when:
                raise self.exc

        def after_epoch(self, learn):
            events.append(("after_epoch", learn.epoch))

        def cleanup_epoch(self, learn):
            events.append(("cleanup_epoch", learn.epoch))

        def cleanup_fit(self, learn):
            events.append("cleanup_fit")

    learn = make_learner(callbacks=[Cancel("after_loss", (0, 3), CancelBatchException)])
    learn.fit(1, 1e-2, show=False)
    assert len(learn.recorder.batch_losses) == 7  # batch 3 skipped its step and the Recorder
    events.clear()
    learn = make_learner(callbacks=[Cancel("after_batch", (0, 2), CancelEpochException)])
    learn.fit(2, 1e-2, show=False)
    assert events == [("cleanup_epoch", 0), ("after_epoch", 1), ("cleanup_epoch", 1), "cleanup_fit"]
    assert learn.history["epoch"].tolist() == [1]  # epoch 0 never reached its end
    events.clear()
    learn = make_learner(callbacks=[Cancel("before_batch", (1, 0), CancelFitException)])
    learn.fit(3, 1e-2, show=False)
    assert events == [("after_epoch", 0), ("cleanup_epoch", 0), ("cleanup_epoch", 1), "cleanup_fit"]
    assert learn.epoch == 1 and not learn.training


def test_an_error_inside_fit_still_runs_cleanup_and_leaves_training_mode(make_learner):
    cleaned = []

    class Boom:
        def after_batch(self, learn):
            if learn.iter == 2:
                raise RuntimeError("boom")

        def cleanup_fit(self, learn):
            cleaned.append(learn.training)

    learn = make_learner(callbacks=[Boom()])
    dls = learn.dls
    with pytest.raises(RuntimeError, match="boom"):
        learn.fit(1, 1e-2, show=False)
    assert cleaned == [True] and not learn.training and learn.dls is dls
    names = [type(cb).__name__ for cb in learn.callbacks]
    assert names == ["Recorder", "Boom", "NanCheck"]  # the fit's Scheduler is gone


def test_every_cleanup_runs_and_the_error_that_ended_the_fit_is_the_one_raised(make_learner):
    ran = []

    class Fails:
        order = -1

        def after_batch(self, learn):
            raise RuntimeError("the fit's error")

        def cleanup_fit(self, learn):
            ran.append("fails")
            raise ValueError("a cleanup's error")

    class Later:
        def cleanup_fit(self, learn):
            ran.append("later")

    learn = make_learner(callbacks=[Fails(), Later()])
    with pytest.raises(RuntimeError, match="the fit's error") as info:
        learn.fit(1, 1e-2, show=False)
    assert ran == ["fails", "later"] and "a cleanup's error" in " ".join(info.value.__notes__)


def test_cancelling_a_batch_in_an_evaluation_leaves_it_out(make_learner):
    from lessonlib.engine.callbacks import CancelBatchException

    class SkipFirst:
        def before_validate(self, learn):
            self.seen = 0

        def before_batch(self, learn):
            if not learn.training:
                self.seen += 1
                if self.seen == 1:
                    raise CancelBatchException

    learn = make_learner()
    first, *rest = list(learn.valid_dl)
    whole = learn.evaluate()
    learn.callbacks.append(SkipFirst())
    learn.fit(1, 0.0, schedule="constant", show=False)  # validation runs too: it is not aborted
    skipped = learn.evaluate()
    rest_only = make_learner().evaluate(rest)
    assert skipped["loss"] != whole["loss"] and skipped["loss"] == pytest.approx(rest_only["loss"])
