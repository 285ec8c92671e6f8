"""The glue between the Learner and PyTorch's own distributed engine (torchrun + DDP).

Under `torchrun --nproc_per_node=N script.py` the environment holds RANK, WORLD_SIZE and LOCAL_RANK;
the Learner then joins the process group, wraps its model in DistributedDataParallel and shards the
loaders with the helpers below. Outside torchrun every function here is a cheap no-op answer.
Imports nothing of ours.
"""

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
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Only the main process (rank 0) prints, plots and saves."""
    return rank() == 0


def local_device() -> torch.device:
    """This process's device: cuda:LOCAL_RANK when CUDA is here, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def init(device: torch.device) -> None:
    """Join the process group (nccl on CUDA, gloo on CPU) unless this process already has."""
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


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


def shard_train(dl, seed: int = 0):
    """This process's part of the training data. A DataLoader with a batch size gets a
    DistributedSampler (shuffled if `dl` was; the batch size is per process); one with a batch sampler
    gets every world-th batch. Any other loader is used as given: it shards itself (or not)."""
    if not isinstance(dl, DataLoader):
        return dl
    if dl.batch_size is None:
        return reload(dl, batch_sampler=ShardBatches(dl.batch_sampler, rank(), world_size(), even=True))
    shuffle = isinstance(dl.sampler, RandomSampler)
    return reload(dl, DistributedSampler(dl.dataset, num_replicas=world_size(), rank=rank(),
                                         shuffle=shuffle, seed=seed, drop_last=dl.drop_last))


def shard_valid(dl):
    """The validation data split across processes without padding or repeats (see ShardSampler)."""
    if not isinstance(dl, DataLoader):
        return dl
    if dl.batch_size is None:
        return reload(dl, batch_sampler=ShardBatches(dl.batch_sampler, rank(), world_size(), even=False))
    return reload(dl, ShardSampler(len(dl.dataset), rank(), world_size()))


def set_epoch(dl, epoch: int) -> None:
    """Tell the loader's sampler which epoch starts (DistributedSampler reshuffles with it)."""
    for part in (dl, getattr(dl, "sampler", None), getattr(dl, "batch_sampler", None)):
        if hasattr(part, "set_epoch"):
            part.set_epoch(epoch)
            return
