"""GEMM peak of this machine, shared by the benchmarks that report a FLOP rate against it.

On CPUs torch's fp32 `a @ b` calls MKL, which on AMD processors with AVX-512 runs its AVX2 kernel, slower
than oneDNN's (figures in benchmarks/README.md). A FLOP rate quoted against MKL alone would flatter the
code there, so the fp32 peak is the better of the two libraries."""

import math
import time

import torch


def _best_rate(fn, flops: float, reps: int, device) -> float:
    fn()  # warm-up
    best = math.inf
    for _ in range(reps):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return flops / best / 1e9


def sync(device):
    """Wait for queued GPU work (a no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def gemm_peaks(dtype=torch.float32, n: int = 2048, reps: int = 5, device="cpu") -> dict:
    """GFLOP/s of an n x n x n matmul, best of `reps`, per library: {"torch": ..., "onednn": ...}
    (oneDNN only for fp32 on CPU, where torch's own matmul does not use it)."""
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    rates = {"torch": _best_rate(lambda: a @ b, 2 * n**3, reps, device)}
    if torch.device(device).type == "cpu" and dtype == torch.float32 and torch.backends.mkldnn.is_available():
        am, bm = a.to_mkldnn(), b.to_mkldnn()
        rates["onednn"] = _best_rate(lambda: torch.ops.aten.mkldnn_linear(am, bm), 2 * n**3, reps, device)
    return rates


def gemm_peak(dtype=torch.float32, n: int = 2048, reps: int = 5, device="cpu") -> float:
    """The machine's GEMM peak in `dtype`: the best library's rate (see gemm_peaks)."""
    return max(gemm_peaks(dtype, n, reps, device).values())


def describe(rates: dict) -> str:
    """"torch 217, onednn 479": a gemm_peaks result for printing."""
    return ", ".join(f"{k} {v:,.0f}" for k, v in rates.items())
