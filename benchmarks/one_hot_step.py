"""One training step of the one-hot Rossmann network against the embedding network, on random codes with
the full data's cardinalities (the processor fitted on the training rows of all 1,115 stores: 30
categorical inputs, 1,484 codes, 20 continuous; layers 256, 128; batch 1,024; fused AdamW): milliseconds
per step.

    python benchmarks/one_hot_step.py --threads 1
    PYTHONPATH=/path/to/an/older/checkout python benchmarks/one_hot_step.py --threads 1   # its lessonlib

Best and median of 5 rounds of 100 steps after 20 warm-up steps; prints which lessonlib it timed.
"""

import argparse
import time

import torch
import torch.nn.functional as F

import lessonlib
from lessonlib.data import rossmann
from lessonlib.tabular import features
from lessonlib.tabular.model import TabularConfig, TabularModel
from lessonlib.tabular.preprocess import TabularProcessor


def full_data_shape() -> tuple[list, int]:
    """(codes per categorical input, number of continuous inputs) of the processor fitted on the full
    data's training rows, built with what every checkout of lessonlib has."""
    train, _ = features.build(rossmann("full"))
    fit_rows, _ = features.split(features.sales_rows(train), features.LESSON_VALID)
    proc = TabularProcessor(features.CAT_NAMES, features.CONT_NAMES).fit(fit_rows)
    return proc.cardinalities, len(proc.cont_names)


def ms_per_step(cardinalities, n_cont: int, one_hot: bool, bs: int = 1024, rounds: int = 5,
                steps: int = 100) -> tuple[float, float]:
    torch.manual_seed(0)
    net = TabularModel(cardinalities, n_cont, TabularConfig(layers=(256, 128), one_hot=one_hot,
                                                            fast_layers=True))
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-3, fused=True)
    n = bs * 20
    cats = torch.stack([torch.randint(0, c, (n,)) for c in cardinalities], 1)
    conts, y = torch.randn(n, n_cont), torch.randn(n)

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
    cardinalities, n_cont = full_data_shape()
    print(f"lessonlib from {lessonlib.__file__}, torch {torch.__version__}, {args.threads} thread(s); "
          f"{len(cardinalities)} categorical inputs with {sum(cardinalities)} codes, {n_cont} continuous")
    for one_hot in (False, True):
        best, median = ms_per_step(cardinalities, n_cont, one_hot)
        print(f"{'one-hot' if one_hot else 'embeddings'}: {best:.2f} ms/step best, {median:.2f} median")


if __name__ == "__main__":
    main()
