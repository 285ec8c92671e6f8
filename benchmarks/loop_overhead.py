"""How much time does the Learner add over a bare hand-written PyTorch loop? Target: at most 5%.

Same MLP (same initial weights), same in-memory data and DataLoader, same batch size and number of
steps, AdamW in both; the Learner also runs its one-cycle schedule. The two are timed alternately,
several rounds, and compared by the medians and minima of their CPU time (process time: what this
process computed, much less disturbed than wall-clock time when other jobs share the cores; wall-clock
medians are printed too). The Learner's fixed cost per step is measured on a tiny model, where it
shows most. Then bf16 autocast against fp32 on the CPU, same MLP.

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
from lessonlib.engine.learner import Learner  # noqa: E402


def mlp(width):
    if width is None:
        return nn.Linear(16, 2)
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
    Learner(model, (dl, None), F.cross_entropy, amp=amp, device="cpu").fit(epochs, lr, schedule, show=False)


def timed(fn, init, *args, **kw):
    """CPU seconds and wall seconds `fn` takes to train a fresh copy of the initial MLP, and its weights."""
    model = mlp(init["width"])
    model.load_state_dict(init["state"])
    torch.manual_seed(1)  # same shuffling and dropout masks in every run
    cpu, wall = time.process_time(), time.perf_counter()
    fn(model, *args, **kw)
    return (time.process_time() - cpu, time.perf_counter() - wall), [p.detach() for p in model.parameters()]


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
    b = report("bare loop", runs["bare"], steps)
    t = report("Learner", runs["learner"], steps)
    c = report("Learner one-cycle", runs["one_cycle"], steps)
    b_min, t_min, c_min = (min(t[0] for t in runs[k]) for k in ("bare", "learner", "one_cycle"))
    for label, base, ours, cyc in (("medians", b, t, c), ("fastest runs", b_min, t_min, c_min)):
        overhead = 100 * (ours / base - 1)
        print(f"Learner / bare, CPU time, {label}: {ours / base:.3f} (overhead {overhead:+.1f}%, "
              f"target <= +5%); with the one-cycle schedule {cyc / base:.3f}")

    # The fixed cost per step, measured where it is largest relative to the work: a tiny model.
    tiny_dl = DataLoader(TensorDataset(torch.randn(4096, 16), torch.randint(0, 2, (4096,))), batch_size=16)
    tiny = {"width": None, "state": nn.Linear(16, 2).state_dict()}
    tiny_runs = {"bare": [], "learner": []}
    for r in range(args.rounds):
        for name in ["bare", "learner"] if r % 2 == 0 else ["learner", "bare"]:
            tiny_runs[name].append(timed(fns[name], tiny, tiny_dl, 1, 1e-3)[0][0])
    tb, tl = (1e6 * statistics.median(tiny_runs[k]) / len(tiny_dl) for k in ("bare", "learner"))
    print(f"tiny model Linear(16, 2), {len(tiny_dl)} steps: bare {tb:.0f} us/step, Learner {tl:.0f} us/step "
          f"(CPU time): the Learner adds {tl - tb:.0f} us per step, "
          f"{100 * (tl - tb) / (1e6 * b_min / steps):.1f}% of the MLP's fastest step")

    fp32, bf16 = [], []
    for r in range(args.rounds):
        pair = [(fp32, False), (bf16, "bf16")]
        for times, amp in pair if r % 2 == 0 else pair[::-1]:
            times.append(timed(learner_loop, init, dl, args.epochs, 1e-3, amp=amp)[0])
    f = report("Learner fp32", fp32, steps)
    h = report("Learner bf16 autocast", bf16, steps)
    print(f"bf16 / fp32 = {h / f:.3f} CPU time ({'bf16 pays' if h < f else 'bf16 does not pay'} on this CPU)")


def report(name, runs, steps):
    """Print the medians of (cpu, wall) runs; return the CPU median."""
    cpu, wall = (statistics.median(t[i] for t in runs) for i in (0, 1))
    print(f"{name:22s}: CPU {cpu:.3f}s ({1e3 * cpu / steps:.2f} ms/step), wall {wall:.3f}s; "
          f"CPU runs {[round(t[0], 3) for t in runs]}")
    return cpu


if __name__ == "__main__":
    main()
