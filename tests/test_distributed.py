"""The Learner under DDP: 2 CPU processes (gloo on 127.0.0.1) against 1 process over the same global
batches. The processes are started the way torchrun would: RANK/WORLD_SIZE/LOCAL_RANK in the env."""

import contextlib
import io
import os
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lessonlib.core import seed_everything
from lessonlib.engine import distributed
from lessonlib.engine.callbacks import Callback, GradientClip
from lessonlib.engine.learner import Learner, accuracy
from lessonlib.engine.training import TrainConfig

PER_RANK_BS, WORLD = 8, 2


def make_learner(batch_size):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, generator=g)
    x_train, x_valid = torch.randn(64, 6, generator=g), torch.randn(51, 6, generator=g)  # 51: uneven shards
    train = TensorDataset(x_train, (x_train @ w > 0).long())
    valid = TensorDataset(x_valid, (x_valid @ w > 0).long())
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    return Learner(model, (DataLoader(train, batch_size=batch_size), DataLoader(valid, batch_size=10)),
                   F.cross_entropy, metrics={"acc": accuracy}, callbacks=[GradientClip(1.0)])


def worker(rank, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo0" if sys.platform == "darwin" else "lo")  # loopback only
    torch.set_num_threads(1)
    learn = make_learner(PER_RANK_BS)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        learn.fit(2, 3e-2)
        learn.save(os.path.join(out_dir, "ckpt.pt"))  # waits for every process (barrier), so all can load it
    learn.load(os.path.join(out_dir, "ckpt.pt"))
    result = {"params": [p.detach().clone() for p in learn.model.parameters()], "printed": printed.getvalue(),
              "history": learn.history.drop(columns="seconds").to_dict("list"), "rank": distributed.rank(),
              "steps": len(learn.recorder.batch_losses)}
    result["joined_after_fit"] = dist.is_initialized()
    dls = learn.dls

    class Boom(Callback):
        def after_batch(self, learn):
            raise RuntimeError("boom")

    try:
        learn.fit(1, 3e-2, show=False, callbacks=[Boom()])
    except RuntimeError:
        result["after_error"] = (learn.distributed.wrapped is None, learn.dls is dls, learn.training,
                                 dist.is_initialized())
    torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))


def test_two_processes_match_one_process_over_the_same_global_batches(tmp_path, monkeypatch, free_port):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    single = make_learner(PER_RANK_BS * WORLD)
    assert not dist.is_initialized()
    single.fit(2, 3e-2, show=False)

    mp.spawn(worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]

    for got in ranks:
        assert got["steps"] == 8  # 64 samples / (2 x 8) per step x 2 epochs: each rank saw its half
        for a, b in zip(single.model.parameters(), got["params"], strict=True):
            torch.testing.assert_close(a.detach(), b, rtol=1e-5, atol=1e-6)
        for col in ("valid_loss", "acc", "train_loss"):  # metrics averaged over all ranks' samples
            assert got["history"][col] == pytest.approx(single.history[col].tolist(), rel=1e-5)
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["joined_after_fit"] for r in ranks)  # the group stays joined until the process exits
    # after an error too: the wrapper gone, the Learner's own loaders back, training off
    assert all(r["after_error"] == (True, True, False, True) for r in ranks)
    assert len(ranks[0]["printed"].strip().splitlines()) == 3 and ranks[1]["printed"] == ""
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert saved["epoch"] == 2 and not list(tmp_path.glob("*.tmp"))


def test_outside_torchrun_everything_is_single_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.launched_by_torchrun() and distributed.world_size() == 1 and distributed.is_main()
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert distributed.launched_by_torchrun()


def test_shard_sampler_covers_every_sample_once():
    shards = [list(distributed.ShardSampler(11, r, 3)) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(11)) and [len(s) for s in shards] == [4, 4, 3]


def test_shard_batches_gives_every_rank_its_batches_and_equal_counts_in_training():
    batches = [[i] for i in range(7)]
    train = [list(distributed.ShardBatches(batches, r, 3, even=True)) for r in range(3)]
    valid = [list(distributed.ShardBatches(batches, r, 3, even=False)) for r in range(3)]
    assert train == [[[0], [3]], [[1], [4]], [[2], [5]]]
    assert valid == [[[0], [3], [6]], [[1], [4]], [[2], [5]]]
    assert [len(distributed.ShardBatches(batches, r, 3, even=True)) for r in range(3)] == [2, 2, 2]


# ---- the library's own loaders under DDP: the LM stream and the tabular TensorLoader ---------------------
class Batches(Callback):
    """Every training batch's rows as the loop saw them (inputs for the LM, targets for the tables)."""

    def __init__(self):
        self.seen = []

    def before_batch(self, learn):
        if learn.training:
            x, y = learn.batch
            self.seen.append((x if torch.is_tensor(x) else y).clone())


def lm_learner_at(bs):
    from lessonlib.text.lm import LMConfig, LMData, lm_learner
    from lessonlib.text.vocab import Vocab, numericalize_docs

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    docs = [["xxbos", *rng.choice(words, size=rng.integers(20, 60))] for _ in range(60)]
    vocab = Vocab.build(docs, min_freq=1)
    data = LMData(docs[:50], docs[50:], vocab, numericalize_docs(vocab, docs[:50]),
                  numericalize_docs(vocab, docs[50:]))
    # no dropout (each process would draw its own masks); AR/TAR and clipping stay on
    cfg = LMConfig(emb_size=8, n_hid=12, n_layers=2, bptt=8, jitter=2, drop_mult=0.0,
                   train=TrainConfig(epochs=2, lr=1e-2, bs=bs, clip=0.3, precision="fp32"))
    seed_everything(3)
    return lm_learner(data, "awd", cfg, seed=3, callbacks=[Batches()])


def tabular_learner_at(bs):
    from lessonlib.tabular.loader import TensorLoader
    from lessonlib.tabular.model import TabularConfig, TabularModel

    g = torch.Generator().manual_seed(0)
    cats = torch.stack([torch.randint(1, n, (256,), generator=g) for n in (9, 5)], 1)
    y = torch.arange(256, dtype=torch.float32) / 256 + cats[:, 0] / 8  # every row's target differs
    conts = torch.zeros(256, 0)
    torch.manual_seed(0)
    # no hidden layer: batch norm would normalise each process's half-batch by its own statistics
    net = TabularModel([9, 5], 0, TabularConfig(layers=(), ps=(), emb_drop=0.0))
    train = TensorLoader(cats, conts, y, bs, shuffle=True, generator=torch.Generator().manual_seed(5))
    valid = TensorLoader(cats[:40], conts[:40], y[:40], 16)
    return Learner(net, (train, valid), F.mse_loss, callbacks=[Batches()])


BUILDERS = {"lm": (lm_learner_at, 4), "tabular": (tabular_learner_at, 16)}


def loader_worker(rank, port, out_dir, kind):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo0" if sys.platform == "darwin" else "lo")
    torch.set_num_threads(1)
    build, bs = BUILDERS[kind]
    learn = build(bs)
    learn.fit(2, 1e-2, show=False)
    spy = next(cb for cb in learn.callbacks if isinstance(cb, Batches))
    torch.save({"params": [p.detach() for p in learn.model.parameters()], "seen": spy.seen,
                "valid_loss": learn.history["valid_loss"].tolist()}, os.path.join(out_dir, f"rank{rank}.pt"))


@pytest.mark.parametrize("kind", ["lm", "tabular"])
def test_each_process_reads_its_own_rows_and_together_they_train_as_one_process(tmp_path, monkeypatch, kind,
                                                                                free_port):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    build, bs = BUILDERS[kind]
    single = build(bs * WORLD)
    single.fit(2, 1e-2, show=False)
    mp.spawn(loader_worker, args=(free_port(), str(tmp_path), kind), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]

    seen = next(cb for cb in single.callbacks if isinstance(cb, Batches)).seen
    assert all(len(r["seen"]) == len(seen) for r in ranks)
    for k, whole in enumerate(seen):  # batch k of one process = rank 0's rows, then rank 1's
        halves = [r["seen"][k] for r in ranks]
        assert all(len(h) == bs for h in halves) and torch.equal(torch.cat(halves), whole)
    for r in ranks:
        for a, b in zip(single.model.parameters(), r["params"], strict=True):
            torch.testing.assert_close(a.detach(), b, rtol=1e-4, atol=1e-5)
        assert r["valid_loss"] == pytest.approx(single.history["valid_loss"].tolist(), rel=1e-4)


def test_a_loader_that_cannot_be_split_is_an_error_under_torchrun():
    batches = [(torch.zeros(4, 6), torch.zeros(4).long())]
    with pytest.raises(TypeError, match="cannot be split across processes"):
        distributed.shard_train(batches, rank=0, world=2)
    assert distributed.shard_train(batches, rank=0, world=1) is batches


def test_the_process_group_is_left_when_the_process_exits(monkeypatch):
    joined, at_exit = [], []
    monkeypatch.setattr(dist, "is_initialized", lambda: bool(joined))
    monkeypatch.setattr(dist, "init_process_group", lambda backend: joined.append(backend))
    monkeypatch.setattr(distributed.atexit, "register", at_exit.append)
    distributed.init(torch.device("cpu"))
    distributed.init(torch.device("cpu"))  # already joined: nothing more
    assert joined == ["gloo"] and at_exit == [distributed.leave]
