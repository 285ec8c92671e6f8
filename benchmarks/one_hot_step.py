"""One training step of the one-hot Rossmann network against the embedding network, on random codes with
the full data's cardinalities (layers 256, 128; batch 1,024; fused AdamW): milliseconds per step.

    python benchmarks/one_hot_step.py --threads 1
    PYTHONPATH=/path/to/an/older/checkout python benchmarks/one_hot_step.py --threads 1   # its lessonlib

Best and median of 5 rounds of 100 steps after 20 warm-up steps; prints which lessonlib it timed.
"""

import argparse
import time

import torch
import torch.nn.functional as F

import lessonlib
from lessonlib.tabular.model import TabularConfig, TabularModel

# Codes per categorical input on the full data (notebook 03's section 1 prints them), 20 continuous inputs.
CARDINALITIES = [1116, 8, 4, 13, 32, 5, 26, 27, 5, 4, 5, 24, 8, 13, 53, 22, 7, 7, 4, 4, 9, 9, 3, 31, 31,
                 3, 3, 3]
N_CONT = 20


def ms_per_step(one_hot: bool, bs: int = 1024, rounds: int = 5, steps: int = 100) -> tuple[float, float]:
    torch.manual_seed(0)
    net = TabularModel(CARDINALITIES, N_CONT, TabularConfig(layers=(256, 128), one_hot=one_hot,
                                                            fast_layers=True))
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-3, fused=True)
    n = bs * 20
    cats = torch.stack([torch.randint(0, c, (n,)) for c in CARDINALITIES], 1)
    conts, y = torch.randn(n, N_CONT), torch.randn(n)

    def step(i):
        rows = slice((i % 20) * bs, (i % 20 + 1) * bs)
        loss = F.mse_loss(net((cats[rows], conts[rows])), y[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()

    for i in range(20):
        step(i)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(steps):
            step(i)
        times.append((time.perf_counter() - start) / steps * 1e3)
    return min(times), sorted(times)[len(times) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"lessonlib from {lessonlib.__file__}, torch {torch.__version__}, {args.threads} thread(s)")
    for one_hot in (False, True):
        best, median = ms_per_step(one_hot)
        print(f"{'one-hot' if one_hot else 'embeddings'}: {best:.2f} ms/step best, {median:.2f} median")


if __name__ == "__main__":
    main()
