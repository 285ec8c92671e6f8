"""The Learner under DDP: 2 CPU processes (gloo on 127.0.0.1) against 1 process over the same global
batches. The processes are started the way torchrun would: RANK/WORLD_SIZE/LOCAL_RANK in the env."""

import contextlib
import io
import os
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from conftest import free_port
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lessonlib import distributed
from lessonlib.callbacks import GradientClip
from lessonlib.learner import Learner, accuracy

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
        learn.save(os.path.join(out_dir, "ckpt.pt"))
    result = {"params": [p.detach() for p in learn.model.parameters()], "printed": printed.getvalue(),
              "history": learn.history.drop(columns="seconds").to_dict("list"), "rank": distributed.rank(),
              "steps": len(learn.recorder.batch_losses)}
    torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_two_processes_match_one_process_over_the_same_global_batches(tmp_path, monkeypatch):
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
