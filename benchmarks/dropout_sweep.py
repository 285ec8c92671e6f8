"""What notebook 01's p-sweep costs: one training run (the sample preset's settings) per hidden size,
timed as CPU seconds and wall seconds (median of repeats), for sparse CSR batches and dense batches, and
the projected cost of the notebook's 48 training runs (36 in the sweep, 12 in the output-ReLU section).

    LESSONLIB_PROGRESS=0 .venv/bin/python benchmarks/dropout_sweep.py [--repeats 3] [--preset sample]

Wall seconds depend on what else the machine runs; CPU seconds much less so. Both are printed.
"""

import argparse
import statistics
import time

import torch

from lessonlib.bow import BagOfWords
from lessonlib.core import seed_everything
from lessonlib.data import imdb_reviews
from lessonlib.dropout import MLP, DropoutRun, train_run
from lessonlib.engine.training import TrainConfig

EPOCHS, LR, BATCH, FEATURES = 10, 3e-3, 250, 5000  # notebook 01's defaults
RUNS_PER_SIZE = {16: 18 + 12, 128: 18}  # sweep: 6 p x 3 seeds per size; section 5: 4 x 3 small runs


def timed_run(data, n_features, hidden, dense_batches):
    seed_everything(0)
    model = MLP(n_features, hidden, p=0.5)
    cpu, wall = time.process_time(), time.perf_counter()
    train = TrainConfig(epochs=EPOCHS, lr=LR, bs=BATCH, precision="fp32")
    train_run(model, data, DropoutRun(train, dense_batches=dense_batches), seed=0)
    return time.process_time() - cpu, time.perf_counter() - wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="sample")
    args = parser.parse_args()
    train, test = imdb_reviews(args.preset, "train"), imdb_reviews(args.preset, "test")
    start = time.perf_counter()
    bow = BagOfWords(ngram_range=(1, 2), min_df=2, max_features=FEATURES).fit(train["text"])
    X_train, X_valid = bow.transform(train["text"]), bow.transform(test["text"][::2])
    print(f"features: {bow.n_features} from {len(train)} reviews in {time.perf_counter() - start:.1f}s; "
          f"torch threads: {torch.get_num_threads()}")
    data = (X_train, torch.tensor(train["label"].to_numpy()), X_valid,
            torch.tensor(test["label"].to_numpy()[::2]))
    projected = {}
    for dense in (False, True):
        for hidden in RUNS_PER_SIZE:
            times = [timed_run(data, bow.n_features, hidden, dense) for _ in range(args.repeats)]
            cpu = statistics.median(t[0] for t in times)
            wall = statistics.median(t[1] for t in times)
            name = "dense batches" if dense else "sparse batches"
            print(f"{name:14s} hidden {hidden:4d}: one {EPOCHS}-epoch run: cpu {cpu:.2f}s, wall {wall:.2f}s")
            projected[dense] = projected.get(dense, 0.0) + cpu * RUNS_PER_SIZE[hidden]
    for dense, cpu in projected.items():
        print(f"{'dense' if dense else 'sparse'} batches: notebook's 48 runs ~ {cpu:.0f} CPU seconds")


if __name__ == "__main__":
    main()
