"""How much time does the Learner add over a bare hand-written PyTorch loop? Target: at most 5%.

Same MLP (same initial weights), same in-memory data and DataLoader, same batch size and number of
steps, AdamW in both; the Learner also runs its one-cycle schedule. The two are timed alternately,
several rounds, and compared by their medians. Then bf16 autocast against fp32 on the CPU, same MLP.

    .venv/bin/python benchmarks/loop_overhead.py [--rounds 7] [--epochs 2] [--threads 1]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("LESSONLIB_PROGRESS", "0")  # bars would be drawn in the Learner only

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from lessonlib.core import seed_everything  # noqa: E402
from lessonlib.learner import Learner  # noqa: E402


def mlp(width):
    return nn.Sequential(nn.Linear(784, width), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(width, width // 2), nn.ReLU(), nn.Linear(width // 2, 10))


def bare_loop(model, dl, epochs, lr):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.01)
    model.train()
    for _ in range(epochs):
        for x, y in dl:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)


def learner_loop(model, dl, epochs, lr, amp=False, schedule="constant"):
    Learner(model, dl, None, F.cross_entropy, amp=amp, device="cpu").fit(epochs, lr, schedule, show=False)


def timed(fn, init, *args, **kw):
    """Seconds `fn` takes to train a fresh copy of the initial MLP, and the trained weights."""
    model = mlp(init["width"])
    model.load_state_dict(init["state"])
    torch.manual_seed(1)  # same shuffling and dropout masks in every run
    start = time.perf_counter()
    fn(model, *args, **kw)
    return time.perf_counter() - start, [p.detach() for p in model.parameters()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--bs", type=int, default=128)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 keeps timings stable on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seed_everything(0)
    x, y = torch.randn(args.samples, 784), torch.randint(0, 10, (args.samples,))
    dl = DataLoader(TensorDataset(x, y), batch_size=args.bs, shuffle=True)
    init = {"width": args.width, "state": mlp(args.width).state_dict()}
    steps = args.epochs * len(dl)
    print(f"MLP 784-{args.width}-{args.width // 2}-10, batch {args.bs}, {steps} AdamW steps per run, "
          f"{args.rounds} rounds, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.1f}")

    timed(bare_loop, init, dl, 1, 1e-3)  # warm-up
    # With a constant LR the Learner does exactly the bare loop's arithmetic: any time difference is the
    # loop's own overhead (checked below: identical weights). The one-cycle runs add the schedule's cost.
    runs = {"bare": [], "learner": [], "one_cycle": []}
    fns = {"bare": bare_loop, "learner": learner_loop,
           "one_cycle": lambda m, *a: learner_loop(m, *a, schedule="one_cycle")}
    weights = {}
    for r in range(args.rounds):
        for name in list(fns) if r % 2 == 0 else list(fns)[::-1]:
            seconds, weights[name] = timed(fns[name], init, dl, args.epochs, 1e-3)
            runs[name].append(seconds)
    same = all(torch.equal(a, b) for a, b in zip(weights["bare"], weights["learner"], strict=True))
    print(f"Learner (constant LR) ends with the bare loop's exact weights: {same}")
    bare, learn = runs["bare"], runs["learner"]
    b, t = statistics.median(bare), statistics.median(learn)
    print(f"bare loop : median {b:.3f}s ({1e3 * b / steps:.2f} ms/step) runs {[round(s, 3) for s in bare]}")
    print(f"Learner   : median {t:.3f}s ({1e3 * t / steps:.2f} ms/step) runs {[round(s, 3) for s in learn]}")
    print(f"Learner / bare = {t / b:.3f}  (overhead {100 * (t / b - 1):+.1f}%, target <= +5%)")
    c = statistics.median(runs["one_cycle"])
    print(f"Learner one-cycle: median {c:.3f}s  ratio to bare {c / b:.3f}  runs "
          f"{[round(t, 3) for t in runs['one_cycle']]}")

    fp32, bf16 = [], []
    for r in range(args.rounds):
        pair = [(fp32, False), (bf16, "bf16")]
        for times, amp in pair if r % 2 == 0 else pair[::-1]:
            times.append(timed(learner_loop, init, dl, args.epochs, 1e-3, amp=amp)[0])
    f, h = statistics.median(fp32), statistics.median(bf16)
    print(f"CPU fp32       : median {f:.3f}s  runs {[round(t, 3) for t in fp32]}")
    print(f"CPU bf16 (amp) : median {h:.3f}s  runs {[round(t, 3) for t in bf16]}")
    print(f"bf16 / fp32 = {h / f:.3f}  ({'bf16 pays' if h < f else 'bf16 does not pay'} on this CPU)")


if __name__ == "__main__":
    main()
