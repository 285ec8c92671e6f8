"""Dropout for small p that costs what it drops, not what it keeps.

`nn.Dropout` draws one random number per activation. At the lesson's Rossmann rates (p = 0.001 and 0.01
after layers 1000 and 500 wide) drawing them, for so few drops, rivalled the first layer's matmul on
a CPU. `SmallPDropout` draws only the dropped positions: the gaps between consecutive drops of
independent Bernoulli(p) trials are Geometric(p), so the cumulative sums of Geometric(p) draws are
exactly the positions that per-activation coin flips would drop (about n * p numbers instead of n).
The kept activations are scaled by 1 / (1 - p) (inverted dropout).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

DENSE_ABOVE = 0.1  # above this p a dense mask is cheaper than drawing the positions


def bernoulli_positions(n: int, p: float, device=None, block: int | None = None) -> torch.Tensor:
    """The positions in range(n) that independent coin flips with P(drop) = p would drop, in increasing
    order: cumulative sums of Geometric(p) gaps (each gap >= 1), drawn `block` at a time until they
    pass n (by default a block almost always reaches past n: n p plus 6 standard deviations)."""
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p}")
    block = block or int(n * p + 6 * math.sqrt(n * p) + 16)

    def gaps():  # float64 counts positions exactly far beyond any tensor's size
        return torch.empty(block, dtype=torch.float64, device=device).geometric_(p)

    ends = gaps().cumsum_(0)
    while ends[-1] < n:
        ends = torch.cat([ends, gaps().cumsum_(0) + ends[-1]])
    return ends[ends <= n].long() - 1


class _DropPositions(torch.autograd.Function):
    """x / (1 - p) with the given flat positions set to zero; the backward does the same to the
    gradient (one pass each way, where autograd's mul + index_fill would copy the gradient twice)."""

    @staticmethod
    def forward(ctx, x, positions, scale):
        ctx.save_for_backward(positions)
        ctx.scale = scale
        out = x.mul(scale).contiguous()
        out.view(-1).index_fill_(0, positions, 0.0)
        return out

    @staticmethod
    def backward(ctx, grad):
        (positions,) = ctx.saved_tensors
        grad_x = grad.mul(ctx.scale).contiguous()
        grad_x.view(-1).index_fill_(0, positions, 0.0)
        return grad_x, None, None


class SmallPDropout(nn.Module):
    """Inverted dropout with probability p, drawing only the dropped positions (see the module docstring);
    for p above DENSE_ABOVE it is `F.dropout`. The identity in eval mode."""

    def __init__(self, p: float):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability p must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if self.p > DENSE_ABOVE:
            return F.dropout(x, self.p, training=True)
        positions = bernoulli_positions(x.numel(), self.p, x.device)
        return _DropPositions.apply(x, positions, 1 / (1 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"
