"""Where a training step's time goes: the profiler's self CPU time per operator, split into matrix
products and the rest, for the benchmarks that quote a share of the GEMM peak."""

from torch.profiler import ProfilerActivity, profile

MATMUL_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_addmm_activation",
              "mkldnn::_linear_pointwise", "aten::mkldnn_linear", "aten::_weight_int8pack_mm"}


def family(op: str) -> str:
    """"matrix products", "LSTM kernel" (oneDNN's RNN: its products and gates in one op) or the op."""
    if op in MATMUL_OPS:
        return "matrix products"
    if "rnn" in op.lower() or "lstm" in op.lower():
        return "LSTM kernel"
    return op.removeprefix("aten::")


def step_profile(step, steps: int = 5, top: int = 8) -> dict:
    """Run `step()` `steps` times under the profiler and print each family's share of the self CPU
    time, largest first (the `top` largest, then the rest together). Returns {family: share}."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    shares: dict = {}
    for ev in prof.key_averages():
        if ev.key.startswith("ProfilerStep") or ev.self_cpu_time_total <= 0:
            continue
        shares[family(ev.key)] = shares.get(family(ev.key), 0.0) + ev.self_cpu_time_total
    total = sum(shares.values())
    shares = {k: v / total for k, v in sorted(shares.items(), key=lambda kv: -kv[1])}
    shown = list(shares.items())[:top]
    rest = 1 - sum(v for _, v in shown)
    print(f"  profile of {steps} training steps (self CPU time): "
          + ", ".join(f"{k} {v:.1%}" for k, v in shown) + f", everything else {rest:.1%}", flush=True)
    return shares
