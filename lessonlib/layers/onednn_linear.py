"""A drop-in `nn.Linear` (optionally followed by a ReLU) whose fp32 CPU products run through oneDNN.

The forward is one oneDNN product with the bias and the ReLU applied as the result is written, so
the output is written once (`nn.Linear` copies the bias into it first, and the ReLU reads and writes it
again: extra passes over memory). The backward products go through MKL, which reads the transposed
operands in place, except on AMD processors with AVX-512: MKL runs its AVX2 kernel there (it picks
AVX-512 only on Intel ones), so oneDNN's AVX-512 kernel computes them, at the price of transposed
copies of the activations and the gradient. On AVX2-only AMD processors both libraries run AVX2
kernels and MKL, without the copies, is the faster (`benchmarks/rossmann.py --probe-only
--compare-backward` times both; figures in benchmarks/README.md). Anywhere else (GPU, autocast, other
dtypes, a torch without the op) it is exactly `nn.Linear` (then `relu`). Same parameters and
state_dict keys as `nn.Linear`, so checkpoints load either way; results agree to float rounding.
"""

import torch
import torch.nn.functional as F
from torch import nn

from lessonlib.engine.numerics import cpu_info

_OP = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
# where MKL's fp32 products take their AVX2 kernel though the CPU has AVX-512 (see the module docstring)
USE_ONEDNN = cpu_info("vendor_id") == "AuthenticAMD" and "avx512f" in cpu_info("flags").split()


def _mm_t(a: torch.Tensor, b: torch.Tensor, bias=None, relu: bool = False) -> torch.Tensor:
    """a @ b.T (+ bias, then ReLU) by oneDNN; a is (n, k), b is (m, k)."""
    return _OP(a, b, bias, "relu" if relu else "none", [], "")


def _matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b for the backward pass, in the faster library for this CPU (see the module docstring)."""
    if USE_ONEDNN:
        return _mm_t(a.contiguous(), b.t().contiguous())
    return torch.mm(a, b)


class _OneDNNLinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, relu):
        out = _mm_t(x, weight, bias, relu)
        ctx.save_for_backward(x, weight, out if relu else None)
        ctx.has_bias, ctx.relu = bias is not None, relu
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight, out = ctx.saved_tensors
        if ctx.relu:  # no gradient where the ReLU cut the output to 0
            grad = torch.ops.aten.threshold_backward(grad, out, 0)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = _matmul(grad, weight)
        if ctx.needs_input_grad[1]:
            grad_w = _matmul(grad.t(), x)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum(0)
        return grad_x, grad_w, grad_b, None


def onednn_applies(x: torch.Tensor) -> bool:
    """True where the oneDNN path is used: an fp32 CPU tensor, no CPU autocast, the op present."""
    return (_OP is not None and x.device.type == "cpu" and x.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu") and torch.backends.mkldnn.is_available())


class OneDNNLinear(nn.Linear):
    """`nn.Linear`, then a ReLU if `relu`, computed by oneDNN for fp32 CPU inputs (see the module
    docstring)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, relu: bool = False):
        super().__init__(in_features, out_features, bias=bias)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not onednn_applies(x) or self.weight.dtype != torch.float32:
            out = super().forward(x)
            return F.relu(out) if self.relu else out
        lead = x.shape[:-1]
        out = _OneDNNLinearFunction.apply(x.reshape(-1, x.shape[-1]).contiguous(), self.weight, self.bias,
                                          self.relu)
        return out.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", relu=True" if self.relu else "")
