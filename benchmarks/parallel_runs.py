"""Notebook 05's independent classifier runs: one after another on all cores, or side by side?

Times the same `n` runs (sample preset, LM-initialised and from scratch alternating, `labels`
reviews, `epochs` epochs) twice: one after another in this process with torch's default thread
count, then with `lessonlib.parallel.run_parallel` (one process and one thread per core). Prints
both wall times and their ratio; the test accuracies of each run, to show the two ways learn alike.
Needs notebook 04's LM (trains it if missing).

    .venv/bin/python benchmarks/parallel_runs.py [--runs 4] [--labels 300] [--epochs 3]
"""

import argparse
import os
import time

os.environ.setdefault("LESSONLIB_PROGRESS", "0")

import torch  # noqa: E402

from lessonlib.engine.training import with_train  # noqa: E402
from lessonlib.parallel import run_parallel  # noqa: E402
from lessonlib.text.classifier_data import imdb_classifier_data  # noqa: E402
from lessonlib.text.fine_tune import FineTuneConfig, classifier_run  # noqa: E402
from lessonlib.text.lm import trained_lm_path  # noqa: E402
from lessonlib.text.saved import load_encoder  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=4)
    p.add_argument("--labels", type=int, default=300)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    lm_file = trained_lm_path("sample")
    _, vocab = load_encoder(lm_file)
    data = imdb_classifier_data(vocab, "sample", max_tokens=300, n_valid=200, seed=42)
    jobs = [dict(lm_file=lm_file, data=data.subset(args.labels, seed=i), pretrained=i % 2 == 0, seed=i,
                 cfg=with_train(FineTuneConfig(), lr=1e-2 if i % 2 == 0 else 3e-3, epochs=args.epochs),
                 validate=False)
            for i in range(args.runs)]
    print(f"{args.runs} classifier runs of {args.labels} reviews x {args.epochs} epochs; {os.cpu_count()} "
          f"cores, torch threads {torch.get_num_threads()}", flush=True)
    start = time.perf_counter()
    serial = [classifier_run(**job) for job in jobs]
    serial_s = time.perf_counter() - start
    start = time.perf_counter()
    parallel = run_parallel(classifier_run, jobs)
    parallel_s = time.perf_counter() - start
    print(f"one after another: {serial_s:.1f}s; side by side ({os.cpu_count()} processes x 1 thread): "
          f"{parallel_s:.1f}s (process start-up included); ratio {serial_s / parallel_s:.2f}x")
    print("test accuracy per run, one after another: "
          + ", ".join(f"{r['test_acc']:.3f}" for r in serial))
    print("test accuracy per run, side by side:      "
          + ", ".join(f"{r['test_acc']:.3f}" for r in parallel))


if __name__ == "__main__":
    main()
