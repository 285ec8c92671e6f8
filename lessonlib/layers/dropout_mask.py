"""The dropout mask: which activations a dropout keeps, drawn once here for every dropout that draws a
mask (notebook 01's from-scratch dropout, the AWD-LSTM's locked and embedding dropouts). Imports only
torch, so model modules can use it."""

import torch


def check_p(p: float) -> float:
    """`p` as a float, if it is a dropout probability (0 <= p < 1); else a ValueError saying why."""
    if not 0 <= p < 1:
        raise ValueError(f"dropout probability p must be in [0, 1), got {p} (p=1 would drop everything)")
    return float(p)


def dropout_mask(shape, p: float, generator: torch.Generator | None = None, device=None,
                 dtype=torch.float32) -> torch.Tensor:
    """A 0/1 mask: each entry is kept (1) with probability 1-p, independently. lessonlib's own dropouts
    draw their masks here: notebook 01's from-scratch dropout and the AWD-LSTM's locked and embedding
    dropouts. (DropConnect on the LSTM weights and `SmallPDropout` above its small-p range use torch's
    `F.dropout`; `SmallPDropout` below it draws the dropped positions, the same distribution.)"""
    check_p(p)
    return torch.empty(tuple(shape), device=device, dtype=dtype).bernoulli_(1 - p, generator=generator)


def inverted_mask(like: torch.Tensor, shape, p: float) -> torch.Tensor:
    """`dropout_mask` in `like`'s dtype and device, scaled by 1/(1-p): multiply activations by it and
    each keeps its expected value. `shape` may broadcast (one mask per sequence, per word, ...)."""
    return dropout_mask(shape, p, device=like.device, dtype=like.dtype).div_(1 - p)
