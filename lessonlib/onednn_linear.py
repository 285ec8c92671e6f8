"""A drop-in `nn.Linear` whose fp32 CPU matmuls run through oneDNN instead of MKL.

Torch's CPU matmul calls MKL, which on AMD processors picks a kernel about half as fast as oneDNN's
(`benchmarks/gemm.py` measures both; figures in benchmarks/README.md). oneDNN ships
inside torch; this layer calls it for the forward product and both backward products. Anywhere else
(GPU, autocast, other dtypes, a torch without the op) it is exactly `nn.Linear`. Same parameters and
state_dict keys as `nn.Linear`, so checkpoints load either way; results agree to float rounding.
"""

import torch
from torch import nn

_OP = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)


def _mm_t(a: torch.Tensor, b: torch.Tensor, bias=None) -> torch.Tensor:
    """a @ b.T (+ bias) by oneDNN; a is (n, k), b is (m, k)."""
    return _OP(a, b, bias, "none", [], "")


class _OneDNNLinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _mm_t(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = _mm_t(grad, weight.t().contiguous())          # grad @ W
        if ctx.needs_input_grad[1]:
            grad_w = _mm_t(grad.t().contiguous(), x.t().contiguous())  # grad.T @ x
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum(0)
        return grad_x, grad_w, grad_b


def onednn_applies(x: torch.Tensor) -> bool:
    """True where the oneDNN path is used: an fp32 CPU tensor, no CPU autocast, the op present."""
    return (_OP is not None and x.device.type == "cpu" and x.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu") and torch.backends.mkldnn.is_available())


class OneDNNLinear(nn.Linear):
    """`nn.Linear` computed by oneDNN for fp32 CPU inputs (see the module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not onednn_applies(x) or self.weight.dtype != torch.float32:
            return super().forward(x)
        lead = x.shape[:-1]
        out = _OneDNNLinearFunction.apply(x.reshape(-1, x.shape[-1]).contiguous(), self.weight, self.bias)
        return out.reshape(*lead, self.out_features)
