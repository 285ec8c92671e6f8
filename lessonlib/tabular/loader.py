"""Mini-batches cut from in-memory tensors by index (no per-row Python, no pandas in the loop)."""

import math

import numpy as np
import torch


class TensorLoader:
    """Yields `((cats, conts), y)` batches from whole tensors, in order or in a seeded shuffled order.

    Each epoch draws a fresh permutation from `generator` (seed it for reproducible runs)."""

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

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        n, bs = len(self.y), self.batch_size
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        for b in range(len(self)):
            if order is None:
                sl = slice(b * bs, min((b + 1) * bs, n))
                yield (self.cats[sl], self.conts[sl]), self.y[sl]
            else:
                idx = order[b * bs:(b + 1) * bs]
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
