"""Dropout for small p that costs what it drops, not what it keeps.

`nn.Dropout` draws one random number per activation. At the lesson's Rossmann rates (p = 0.001 and 0.01
after layers 1000 and 500 wide) drawing them, for so few drops, rivalled the first layer's matmul on
a CPU. `SmallPDropout` draws how many of the n activations to drop, k ~ Binomial(n, p), then which: a
uniformly random k-subset. Every activation is then dropped independently with probability p, exactly as
in `nn.Dropout`, and the kept ones are scaled by 1 / (1 - p) (inverted dropout).
"""

import torch
import torch.nn.functional as F
from torch import nn

DENSE_ABOVE = 0.1  # above this p a dense mask is cheaper than drawing and de-duplicating positions


def random_subset(n: int, k: int, device=None) -> torch.Tensor:
    """k distinct positions out of range(n), each k-subset equally likely: draw with replacement, keep the
    distinct ones, and draw again for the shortfall until there are k."""
    if not 0 <= k <= n:
        raise ValueError(f"cannot choose {k} distinct positions out of {n}")
    idx = torch.randint(n, (k,), device=device).unique()
    while len(idx) < k:
        idx = torch.cat([idx, torch.randint(n, (k - len(idx),), device=device)]).unique()
    return idx


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
        n = x.numel()
        k = int(torch.binomial(torch.tensor(float(n)), torch.tensor(self.p)).item())
        out = (x * (1 / (1 - self.p))).contiguous()
        out.view(-1).index_fill_(0, random_subset(n, k, x.device), 0.0)
        return out

    def extra_repr(self) -> str:
        return f"p={self.p}"
