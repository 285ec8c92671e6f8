import functools

import pytest
import torch

from lessonlib.engine.schedule import one_cycle, schedule_name


@pytest.mark.parametrize("kind", ["torch", "numpy"])
def test_resume_is_exact(tmp_path, kind, make_learner, params, crash_then_load):
    straight = make_learner(seed=0, kind=kind)
    straight.fit(2, 1e-2, show=False)
    resumed = crash_then_load(tmp_path / "run" / "ckpt.pt", kind=kind)
    assert resumed.epoch == 1 and len(resumed.history) == 1
    with pytest.raises(ValueError, match="same epochs, lr and schedule"):
        resumed.fit(3, 1e-2, show=False, start_epoch=resumed.epoch)
    resumed.fit(2, 1e-2, show=False, start_epoch=resumed.epoch)
    assert all(torch.equal(a, b) for a, b in zip(params(straight.model), params(resumed.model), strict=True))
    assert resumed.history.drop(columns="seconds").equals(straight.history.drop(columns="seconds"))


def test_a_crash_while_saving_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch, make_learner,
                                                                    params):
    learn = make_learner()
    learn.fit(1, 1e-2, show=False)
    path = learn.save(tmp_path / "ckpt.pt")
    good = path.read_bytes()

    def crash(obj, f, *args, **kw):  # torch.save writes into the open temporary file
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        learn.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == good and not list(tmp_path.glob("*.tmp"))
    fresh = make_learner(seed=3)
    fresh.load(path)
    assert all(torch.equal(a, b) for a, b in zip(params(learn.model), params(fresh.model), strict=True))


def test_resume_with_a_callable_schedule_works_in_a_new_process(tmp_path, make_learner, params,
                                                                crash_in_second_epoch):
    def schedule():  # a new function object (at a new address) each call, as in a new process
        def warm_longer(pct):
            return one_cycle(pct, pct_start=0.3)
        return warm_longer

    ckpt = tmp_path / "ckpt.pt"
    straight = make_learner(seed=0)
    straight.fit(2, 1e-2, schedule=schedule(), show=False)
    crashed = make_learner(seed=0, callbacks=[crash_in_second_epoch()])
    with pytest.raises(crash_in_second_epoch.Crash):
        crashed.fit(2, 1e-2, schedule=schedule(), show=False, checkpoint=ckpt)
    resumed = make_learner(seed=7).load(ckpt)
    with pytest.raises(ValueError, match="same epochs, lr and schedule"):
        resumed.fit(2, 1e-2, schedule=functools.partial(one_cycle, pct_start=0.3), show=False,
                    start_epoch=resumed.epoch)
    resumed.fit(2, 1e-2, schedule=schedule(), show=False, start_epoch=resumed.epoch)
    assert all(torch.equal(a, b) for a, b in zip(params(straight.model), params(resumed.model), strict=True))


def test_a_schedule_is_named_by_what_it_computes_not_where_it_lives():
    assert schedule_name("one_cycle") == "one_cycle"
    partial = functools.partial(one_cycle, pct_start=0.3)
    assert schedule_name(partial) == "one_cycle(pct_start=0.3)"
    assert "0x" not in schedule_name(lambda pct: (1.0, 0.9))


class Warmup:
    """A schedule with settings: a callable instance."""

    def __init__(self, pct_warm):
        self.pct_warm = pct_warm

    def __call__(self, pct):
        return min(1.0, pct / self.pct_warm), 0.9


def test_two_schedule_instances_with_other_settings_have_other_names():
    assert schedule_name(Warmup(0.1)) == schedule_name(Warmup(0.1)) == "test_checkpoint.Warmup(pct_warm=0.1)"
    assert schedule_name(Warmup(0.1)) != schedule_name(Warmup(0.3))  # a resume must not mix them


def test_a_named_schedule_and_its_function_are_one_schedule():
    assert schedule_name(one_cycle) == schedule_name("one_cycle") == "one_cycle"


def test_the_loader_rngs_are_found_inside_a_sharded_batch_sampler():
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

    from lessonlib.engine.checkpoint import loader_rngs
    from lessonlib.engine.distributed import shard_train

    ds = TensorDataset(torch.arange(16.0))
    g = torch.Generator().manual_seed(0)
    dl = DataLoader(ds, batch_sampler=BatchSampler(RandomSampler(ds, generator=g), 4, drop_last=False))
    assert any(r is g for r in loader_rngs(dl))
    assert any(r is g for r in loader_rngs(shard_train(dl, rank=0, world=2)))  # saved mid-fit under DDP
