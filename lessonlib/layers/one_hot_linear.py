"""A Linear layer over one-hot codes, computed without building the one-hot vectors.

Fed one-hot codes, a network's first layer multiplies a mostly-zero vector (one 1 per categorical
input, e.g. 30 ones among 1,504 columns on the full Rossmann data) by its weight. The product of a
one-hot block with the weight is the weight's column for the hot code, so `OneHotLinear` sums one column
per categorical input (a gather, `F.embedding_bag`) and multiplies only the continuous inputs. The
parameters, their initialisation and every output and gradient are those of `nn.Linear` on the explicit
[one-hot codes, continuous inputs] vector; only the arithmetic on zeros is skipped.
"""

import torch
import torch.nn.functional as F
from torch import nn


class OneHotLinear(nn.Linear):
    """`nn.Linear(sum(cardinalities) + n_cont, out_features)` applied to each row's one-hot codes
    followed by its continuous inputs, called as `layer(codes, conts)` with the codes (rows x
    categorical inputs, each in range(cardinality)) instead of the one-hot vectors."""

    def __init__(self, cardinalities, n_cont: int, out_features: int, bias: bool = True):
        cardinalities = [int(c) for c in cardinalities]
        if not cardinalities or min(cardinalities) < 1:
            raise ValueError(f"need one or more categorical inputs with a code each, got {cardinalities}")
        self.n_codes = sum(cardinalities)
        super().__init__(self.n_codes + n_cont, out_features, bias=bias)
        self.cardinalities = cardinalities
        self.register_buffer("offsets", torch.tensor([0, *cardinalities[:-1]]).cumsum(0), persistent=False)
        self.register_buffer("limits", torch.tensor(cardinalities), persistent=False)

    def forward(self, codes: torch.Tensor, conts: torch.Tensor) -> torch.Tensor:
        if codes.shape[1] != len(self.cardinalities):
            raise ValueError(f"expected {len(self.cardinalities)} categorical columns, got {codes.shape[1]}")
        outside = (codes < 0) | (codes >= self.limits)  # such a code would read its neighbour's block
        if outside.any():
            column = int(outside.any(0).nonzero()[0])
            raise IndexError(f"categorical column {column} has a code outside "
                             f"range({self.cardinalities[column]})")
        # the gather reads one weight column per code: copied into rows first, since a strided
        # column gather (and its backward) is several times slower than the copy on a CPU
        columns = self.weight[:, :self.n_codes].t().contiguous()
        hot = F.embedding_bag(codes + self.offsets, columns, mode="sum")
        return hot + F.linear(conts, self.weight[:, self.n_codes:], self.bias)

    def extra_repr(self) -> str:
        return f"cardinalities={self.cardinalities}, " + super().extra_repr()
