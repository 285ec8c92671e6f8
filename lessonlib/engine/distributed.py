"""The glue between the Learner and PyTorch's own distributed engine (torchrun + DDP).

Under `torchrun --nproc_per_node=N script.py` the environment holds RANK, WORLD_SIZE and LOCAL_RANK;
the Learner joins the process group at its first fit (and leaves it at exit), and for each fit wraps its
model in DistributedDataParallel and shards the loaders with the helpers below (its `Distributed`
callback). Outside torchrun every function
here is a cheap no-op answer. Imports nothing of ours.

A loader is split across processes if it is a torch DataLoader (a DistributedSampler, or every
world-th batch of its batch sampler) or has a `shard(rank, world, even)` method that returns this
process's part (lessonlib's LMLoader and TensorLoader do); any other loader is an error under torchrun,
since every process would silently train on all of it.
"""

import atexit
import itertools
import os

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Sampler


def launched_by_torchrun() -> bool:
    """True when the environment asks for more than one process (torchrun sets WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank: the process group's, or before it is joined (or after it is left) the one
    torchrun gave in RANK; 0 outside torchrun."""
    if is_distributed():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0")) if launched_by_torchrun() else 0


def world_size() -> int:
    """The number of processes: the process group's, or before it is joined the WORLD_SIZE torchrun gave."""
    if is_distributed():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1")) if launched_by_torchrun() else 1


def is_main() -> bool:
    """Only the main process (rank 0) prints, plots and saves."""
    return rank() == 0


def local_device() -> torch.device:
    """This process's device: cuda:LOCAL_RANK when CUDA is here, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def init(device: torch.device) -> None:
    """Join the process group (nccl on CUDA, gloo on CPU) unless this process already has, and leave it
    when the process exits (PyTorch's own advice: destroy the group at the end). It stays joined in
    between, so a save after a fit still waits for every process (`barrier`)."""
    if dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    atexit.register(leave)


def leave() -> None:
    """Leave the process group (PyTorch's `destroy_process_group`), if still in it. No barrier first:
    after an error in one process the others may wait in a collective it never joins, and torchrun
    stops them when this one exits with the error."""
    if dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(obj):
    """Rank 0's `obj` (picklable), in every process; `obj` itself in a single process."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all processes (in place; a no-op in a single process)."""
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


class ShardSampler(Sampler):
    """Every `world`-th index starting at `rank`, in order, without padding: the shards of all ranks
    together hold each sample exactly once, so summed validation metrics are exact."""

    def __init__(self, n: int, rank: int, world: int):
        self.indices = range(rank, n, world)

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


class ShardBatches(Sampler):
    """Every `world`-th batch of a batch sampler, starting at `rank`. With `even`, every rank gets the
    same number of batches (DDP needs that in training: a rank with an extra step would wait forever)."""

    def __init__(self, batches, rank: int, world: int, even: bool):
        self.batches, self.rank, self.world, self.even = batches, rank, world, even

    def __iter__(self):
        return itertools.islice(self.batches, self.rank, self.rank + self.world * len(self), self.world)

    def __len__(self):
        n = len(self.batches)
        return n // self.world if self.even else len(range(self.rank, n, self.world))

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.batches, "set_epoch"):
            self.batches.set_epoch(epoch)


def reload(dl: DataLoader, sampler=None, batch_sampler=None) -> DataLoader:
    """A copy of `dl` (same dataset, collate, workers) drawing from a new sampler or batch sampler."""
    kw = {"batch_size": dl.batch_size, "drop_last": dl.drop_last, "sampler": sampler} if sampler else {}
    return DataLoader(dl.dataset, batch_sampler=batch_sampler, num_workers=dl.num_workers,
                      collate_fn=dl.collate_fn, pin_memory=dl.pin_memory, worker_init_fn=dl.worker_init_fn,
                      generator=dl.generator, **kw)


def shard_train(dl, rank: int, world: int, seed: int = 0):
    """This process's part of the training data (`dl` itself when `world` is 1). A DataLoader with a
    batch size gets a DistributedSampler (shuffled with `seed` and the epoch if `dl` was shuffled; the
    batch size is per process); one with a batch sampler gets every world-th batch; a loader with a
    `shard` method gives its own part. Every process gets the same number of batches (DDP waits for
    each step on all of them). Any other loader is a TypeError: it cannot be split."""
    if world == 1:
        return dl
    if isinstance(dl, DataLoader):
        if dl.batch_size is None:
            return reload(dl, batch_sampler=ShardBatches(dl.batch_sampler, rank, world, even=True))
        shuffle = isinstance(dl.sampler, RandomSampler)
        return reload(dl, DistributedSampler(dl.dataset, num_replicas=world, rank=rank, shuffle=shuffle,
                                             seed=seed, drop_last=dl.drop_last))
    return _own_shard(dl, rank, world, even=True)


def shard_valid(dl, rank: int, world: int):
    """The validation data split across processes without padding or repeats (see ShardSampler)."""
    if world == 1:
        return dl
    if isinstance(dl, DataLoader):
        if dl.batch_size is None:
            return reload(dl, batch_sampler=ShardBatches(dl.batch_sampler, rank, world, even=False))
        return reload(dl, ShardSampler(len(dl.dataset), rank, world))
    return _own_shard(dl, rank, world, even=False)


def _own_shard(dl, rank: int, world: int, even: bool):
    if not callable(getattr(dl, "shard", None)):
        raise TypeError(f"a {type(dl).__name__} cannot be split across processes: under torchrun every "
                        "process would train on all of it. Use a torch DataLoader, or give the loader a "
                        "shard(rank, world, even) method that returns this process's part")
    return dl.shard(rank, world, even)


def set_epoch(dl, epoch: int) -> None:
    """Tell the loader's sampler which epoch starts (DistributedSampler reshuffles with it)."""
    for part in (dl, getattr(dl, "sampler", None), getattr(dl, "batch_sampler", None)):
        if hasattr(part, "set_epoch"):
            part.set_epoch(epoch)
            return
