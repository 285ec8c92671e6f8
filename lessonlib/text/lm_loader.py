"""Language-model batches: every document in one stream, cut into `bs` rows, read `bptt` tokens at a time.

Each epoch the documents (each already opening with `xxbos`) are shuffled and concatenated; the stream
is cut into `bs` equal contiguous rows; batch k is columns [s_k, s_{k+1}) of every row and its targets
are the same columns shifted by one. So batch k+1 continues batch k in every row, and the model can
carry its hidden state from one batch to the next. Chunk boundaries are jittered around multiples of
`bptt` (the number of batches stays fixed, so `len()` is exact).

Under `torchrun` the Learner asks each process for its part (`shard`): the stream is cut into
`bs * world_size` rows and each process reads its own `bs` of them, all drawing from one random
generator state, so they shuffle alike. Batch k of two processes at `bs` is then batch k of one
process at `2 * bs`, split by rows.
"""

import numpy as np
import torch


class LMLoader:
    """Iterate `(x, y)` LongTensor batches of shape (bs, ~bptt) over `docs` (a list of int arrays)."""

    def __init__(self, docs, bs: int, bptt: int, shuffle: bool = False, jitter: int = 0,
                 seed: int = 0, rank: int = 0, world_size: int = 1):
        docs = [np.asarray(d) for d in docs]
        if not docs:
            raise ValueError("no documents to make a language-model stream from")
        if bs < 1 or bptt < 2:
            raise ValueError(f"need bs >= 1 and bptt >= 2, got bs={bs}, bptt={bptt}")
        if not 0 <= jitter < bptt // 2:
            raise ValueError(f"jitter must be in [0, bptt//2); got {jitter} for bptt={bptt}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        self.docs, self.bs, self.bptt, self.shuffle, self.jitter = docs, bs, bptt, shuffle, jitter
        self.rank, self.world_size = rank, world_size
        self.n_rows = bs * world_size
        self.n_tokens = int(sum(len(d) for d in docs))
        self.row_len = (self.n_tokens - 1) // self.n_rows  # columns of inputs per row
        if self.row_len < 2:
            raise ValueError(f"{self.n_tokens} tokens are too few for {bs} rows; lower bs")
        self.n_batches = max(1, round(self.row_len / bptt))
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.n_batches

    def shard(self, rank: int, world_size: int, even: bool = True) -> "LMLoader":
        """This process's `bs` rows of a stream cut into `bs * world_size` rows (every process gets the
        same number of batches, so `even` needs nothing more), drawing from this loader's generator."""
        part = LMLoader(self.docs, self.bs, self.bptt, self.shuffle, self.jitter, rank=rank,
                        world_size=world_size)
        part.rng = self.rng  # the same generator: what a checkpoint saves and restores
        return part

    def stream(self, order) -> np.ndarray:
        """This process's rows for one epoch: shape (bs, row_len + 1); row r continues where row r-1 stops."""
        flat = np.concatenate([self.docs[i] for i in order])
        need = self.n_rows * self.row_len + 1
        rows = np.lib.stride_tricks.sliding_window_view(flat[:need], self.row_len + 1)[:: self.row_len]
        mine = rows[: self.n_rows][self.rank * self.bs : (self.rank + 1) * self.bs]
        return np.ascontiguousarray(mine).astype(np.int64)

    def boundaries(self) -> np.ndarray:
        """Column where each batch starts, plus the end: len n_batches + 1, strictly increasing."""
        k = np.arange(self.n_batches + 1)
        cuts = np.round(k * self.row_len / self.n_batches).astype(np.int64)
        jitter = min(self.jitter, (self.row_len // self.n_batches - 1) // 2)  # keeps cuts increasing
        if jitter > 0 and self.n_batches > 1:
            cuts[1:-1] += self.rng.integers(-jitter, jitter + 1, self.n_batches - 1)
        return cuts

    def __iter__(self):
        order = self.rng.permutation(len(self.docs)) if self.shuffle else np.arange(len(self.docs))
        data = torch.from_numpy(self.stream(order))
        cuts = self.boundaries()
        for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True):
            yield data[:, a:b], data[:, a + 1 : b + 1]
