"""Mini-batches cut from in-memory tensors by index (no per-row Python, no pandas in the loop)."""

import copy
import math

import numpy as np
import torch


class TensorLoader:
    """Yields `((cats, conts), y)` batches from whole tensors, in order or in a seeded shuffled order.

    Each epoch draws a fresh permutation from `generator` (seed it for reproducible runs). Under
    torchrun the Learner asks each process for its part (`shard`): every process draws the same
    permutation, cuts it into batches of `batch_size * world` rows and takes its own `batch_size` of
    each, so batch k of two processes at `b` is batch k of one process at `2 * b`, split in two."""

    def __init__(self, cats: torch.Tensor, conts: torch.Tensor, y: torch.Tensor, batch_size: int,
                 shuffle: bool = False, generator: torch.Generator | None = None, drop_last: bool = False):
        n = len(y)
        if len(cats) != n or len(conts) != n:
            raise ValueError(f"cats, conts and y need equal row counts: {len(cats)}, {len(conts)}, {n}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.cats, self.conts, self.y = cats, conts, y
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.generator = generator
        self.rank, self.world = 0, 1

    def shard(self, rank: int, world: int, even: bool = True) -> "TensorLoader":
        """This process's part, sharing this loader's tensors and generator. `even` (training): its
        `batch_size` rows of every whole batch of `batch_size * world` rows, so every process takes the
        same number of steps; otherwise (validation) a contiguous block of about 1/world of the rows,
        so that every row is read by exactly one process."""
        if not even:
            n = len(self.y)
            lo, hi = rank * n // world, (rank + 1) * n // world
            return TensorLoader(self.cats[lo:hi], self.conts[lo:hi], self.y[lo:hi], self.batch_size,
                                self.shuffle, self.generator, self.drop_last)
        if len(self.y) < self.batch_size * world:
            raise ValueError(f"{len(self.y)} rows cannot give each of {world} processes one batch of "
                             f"{self.batch_size}: lower the batch size (it is per process) or use fewer "
                             "processes")
        part = copy.copy(self)
        part.rank, part.world, part.drop_last = rank, world, True
        return part

    def __len__(self) -> int:
        n, size = len(self.y), self.batch_size * self.world
        return n // size if self.drop_last else math.ceil(n / size)

    def __iter__(self):
        n, bs, size = len(self.y), self.batch_size, self.batch_size * self.world
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        for b in range(len(self)):
            start = b * size + self.rank * bs
            if order is None:
                sl = slice(start, min(start + bs, n))
                yield (self.cats[sl], self.conts[sl]), self.y[sl]
            else:
                idx = order[start:start + bs]
                yield (self.cats[idx], self.conts[idx]), self.y[idx]


def frame_loader(proc, df, *, batch_size: int, target: str | None = "Sales", shuffle: bool = False,
                 seed: int = 0) -> TensorLoader:
    """A TensorLoader over the rows of `df`, coded by the fitted processor `proc`; y = log(target), or
    zeros when `target` is None (test rows have no Sales)."""
    cats, conts = proc.transform(df)
    if target is None:
        y = np.zeros(len(df), np.float32)
    else:
        y = df[target].to_numpy(np.float64)
        if (y <= 0).any():
            raise ValueError(f"log target needs {target} > 0; keep only such rows (features.sales_rows)")
        y = np.log(y)
    gen = torch.Generator().manual_seed(seed)
    y = torch.as_tensor(y, dtype=torch.float32)
    return TensorLoader(torch.as_tensor(cats), torch.as_tensor(conts), y, batch_size, shuffle, generator=gen)
