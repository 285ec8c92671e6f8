"""Rossmann benchmark: feature-engineering time, exp-RMSPE on the lesson's window and on the forecast
split, training throughput and the matmul FLOP rate against this machine's fp32 GEMM peak.

    python benchmarks/rossmann.py --threads 2 --splits lesson   # the target: 10 networks + trees, ~25 min
    python benchmarks/rossmann.py --threads 2                   # both splits, ~50 min
    python benchmarks/rossmann.py --probe-only --threads 2      # features + 3 short throughput rounds
    python benchmarks/rossmann.py --probe-only --threads 2 --compare-backward  # + MKL vs oneDNN backward

Targets (2 CPU cores): join + features of all 1,058,297 train+test rows <= 15 s; exp-RMSPE <= 0.095 on
2014-08-01..2014-09-17 within 30 minutes; achieved matmul FLOP rate >= 70% of the fp32 GEMM peak
measured in the same run (figures in benchmarks/README.md).
"""

import argparse
import math
import os
import time

import torch
from gemm import gemm_peak
from step_profile import step_profile
from torch import nn

from lessonlib.core import seed_everything
from lessonlib.data import rossmann
from lessonlib.engine.training import TrainConfig
from lessonlib.layers import onednn_linear
from lessonlib.tabular import features
from lessonlib.tabular.experiment import SalesConfig, fit_sales_model, lesson_style_rmspe, sales_learner
from lessonlib.tabular.model import TabularConfig, exp_rmspe
from lessonlib.tabular.preprocess import TabularProcessor
from lessonlib.tabular.trees import BLEND_TREES_WEIGHT, blend, fit_sales_trees


def matmul_flops(model: nn.Module, batch_rows: int, backward: bool = True) -> float:
    """Multiply-add FLOPs of the model's Linear layers for `batch_rows` rows (x3 with the backward pass)."""
    macs = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))
    return 2.0 * macs * batch_rows * (3 if backward else 1)


def sales_config(args, epochs: int) -> SalesConfig:
    """The network and training of the command line's arguments (gradient clipping at 1.0)."""
    model = TabularConfig(layers=args.layers, ps=args.ps, emb_drop=args.emb_drop,
                          fast_layers=not args.plain_layers)
    train = TrainConfig(epochs=epochs, lr=args.lr, bs=args.bs, wd=args.wd, clip=1.0,
                        precision=args.amp or "auto")
    return SalesConfig(model=model, train=train)


def train_and_score(train, valid, args, label: str, n_seeds: int = 1) -> dict:
    """Train the lesson's network through the Learner (lessonlib.tabular.experiment) with seeds
    args.seed, args.seed + 1, ...; score each on `valid` and, with several, their ensemble (the mean of
    the log-Sales predictions); then, unless args.trees_weight is 0, fit the gradient-boosted trees on the
    same rows and score the blend (1 - w) * network + w * trees of the log predictions. `seconds` covers
    the networks' training, `wall` everything (trees included)."""
    print(f"[{label}] train {len(train):,} rows, valid {len(valid):,} rows, layers {args.layers}, "
          f"batch {args.bs}, {args.epochs} epochs at lr {args.lr}, {n_seeds} seed(s)", flush=True)
    preds, seconds, flops, wall = [], 0.0, 0.0, time.perf_counter()
    for seed in range(args.seed, args.seed + n_seeds):
        cfg = sales_config(args, args.epochs)
        proc = TabularProcessor(features.CAT_NAMES, features.CONT_NAMES)
        run = fit_sales_model(train, valid, proc, cfg, seed=seed, device="cpu")
        pred, targets = run.predict(run.learn.valid_dl)
        preds.append(pred.double())
        seconds += run.seconds
        net = run.learn.model
        flops += args.epochs * (matmul_flops(net, len(train)) + matmul_flops(net, len(valid), backward=False))
        print(f"[{label}] seed {seed}: exp-RMSPE {run.rmspe:.4f} (RMSPE factor "
              f"{run.model.log_scale.exp().item():.4f}; {run.seconds:.0f}s)", flush=True)
    ensemble = torch.stack(preds).mean(0)
    if n_seeds > 1:
        print(f"[{label}] networks' ensemble: exp-RMSPE {exp_rmspe(ensemble, targets).item():.4f}",
              flush=True)
    if args.trees_weight:
        start = time.perf_counter()
        trees = fit_sales_trees(train, run.proc, seed=args.seed)
        trees_pred = torch.from_numpy(trees.predict_log(valid))
        print(f"[{label}] gradient-boosted trees: exp-RMSPE {exp_rmspe(trees_pred, targets).item():.4f} "
              f"(RMSPE factor {math.exp(trees.log_scale):.4f}; {time.perf_counter() - start:.0f}s)",
              flush=True)
        ensemble = torch.from_numpy(blend(ensemble, trees_pred, args.trees_weight))
    rmspe = exp_rmspe(ensemble, targets).item()
    lesson_style = lesson_style_rmspe(ensemble, valid)
    return {"rmspe": rmspe, "lesson_style": lesson_style, "seconds": seconds,
            "wall": time.perf_counter() - wall,
            "rows_per_s": n_seeds * args.epochs * len(train) / seconds,
            "gflops": flops / seconds / 1e9}


def throughput_probe(rows, args, rounds: int = 3, n_rows: int = 100_000) -> None:
    """Load-robust FLOP fraction: each round times one training epoch on `n_rows` rows through the
    Learner, bracketed by GEMM-peak measurements, and divides by the mean of the two peaks. Then a
    profile of training steps at the same batch size: what share of the time the products take."""
    fit_rows, valid = features.split(rows, features.LESSON_VALID)
    fit_rows = fit_rows.sample(min(n_rows, len(fit_rows)), random_state=args.seed)
    probe = argparse.Namespace(**{**vars(args), "epochs": 1, "trees_weight": 0})
    for r in range(rounds):
        before = gemm_peak(peak_dtype(args))
        result = train_and_score(fit_rows, valid.head(4096), probe, f"probe {r + 1}/{rounds}")
        after = gemm_peak(peak_dtype(args))
        peak = (before + after) / 2
        print(f"[probe {r + 1}/{rounds}] {result['rows_per_s']:,.0f} rows/s, "
              f"matmul {result['gflops']:.1f} GFLOP/s; {peak_dtype(args)} GEMM peak {before:.1f} before / "
              f"{after:.1f} after -> {100 * result['gflops'] / peak:.0f}% of peak")
    cfg = sales_config(args, epochs=1)
    proc = TabularProcessor(features.CAT_NAMES, features.CONT_NAMES).fit(fit_rows)
    seed_everything(args.seed)
    learn = sales_learner(fit_rows.head(20 * args.bs), valid.head(1024), proc, cfg, seed=args.seed,
                          device="cpu")
    learn.training = True
    learn.model.train()
    batches = iter(learn.train_dl)
    train_step(learn, next(batches))  # warm-up: the first step allocates and picks kernels
    step_profile(lambda: train_step(learn, next(batches)), steps=10)
    if args.compare_backward:
        compare_backward(learn, list(learn.train_dl), peak_dtype(args))


def train_step(learn, batch) -> None:
    """One training step of the Learner's loop on `batch` (its callbacks included)."""
    learn.batch = batch
    learn.one_batch()


def compare_backward(learn, batches, dtype, rounds: int = 5) -> None:
    """The backward products by MKL and by oneDNN (`onednn_linear.USE_ONEDNN`), alternating on
    the same batches within each round, so the machine's drift hits both alike; share of the GEMM peak
    measured at the start of each round."""
    flops = matmul_flops(learn.model, batches[0][-1].shape[0])
    shares = {"MKL": [], "oneDNN": []}
    default = onednn_linear.USE_ONEDNN
    for r in range(rounds):
        peak = gemm_peak(dtype)
        for library in shares:
            onednn_linear.USE_ONEDNN = library == "oneDNN"
            for b in batches[:3]:  # warm-up
                train_step(learn, b)
            start = time.perf_counter()
            for b in batches:
                train_step(learn, b)
            shares[library].append(flops * len(batches) / (time.perf_counter() - start) / 1e9 / peak)
        print(f"  backward products, round {r + 1}/{rounds} (peak {peak:.1f}): "
              + ", ".join(f"{k} {v[-1]:.0%}" for k, v in shares.items()) + " of the peak", flush=True)
    onednn_linear.USE_ONEDNN = default
    print("  backward products, median share of the peak over the rounds: "
          + ", ".join(f"{k} {sorted(v)[len(v) // 2]:.0%}" for k, v in shares.items())
          + f"; this CPU's default: {'oneDNN' if default else 'MKL'}", flush=True)


def peak_dtype(args):
    """The GEMM peak a run is measured against: bf16 under bf16 autocast, else fp32."""
    return torch.bfloat16 if args.amp == "bf16" else torch.float32


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="full", choices=["full", "sample"])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=2e-2)
    parser.add_argument("--bs", type=int, default=1024)
    parser.add_argument("--layers", type=lambda s: tuple(int(v) for v in s.split(",")),
                        default=TabularConfig.layers)
    parser.add_argument("--ps", type=lambda s: tuple(float(v) for v in s.split(",")),
                        default=TabularConfig.ps, help="dropout after each hidden layer")
    parser.add_argument("--emb-drop", type=float, default=TabularConfig.emb_drop)
    parser.add_argument("--plain-layers", action="store_true",
                        help="nn.Linear + nn.Dropout (TabularConfig's default) instead of the fast layers")
    parser.add_argument("--max-log-dev", type=float, default=0.7,
                        help="drop training days this far from their median in log Sales (reopening "
                             "days after a long closure: 1.4); 0 keeps all")
    parser.add_argument("--wd", type=float, default=TrainConfig.wd, help="AdamW weight decay")
    parser.add_argument("--amp", choices=["bf16"], default=None,
                        help="bf16 autocast (the FLOP rate is then also quoted against the bf16 peak)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--max-rows", type=int, default=None, help="train on a random subset (short runs)")
    parser.add_argument("--splits", choices=["both", "lesson", "forecast"], default="both",
                        help="the lesson's window, the forecast split (last 48 days), or both")
    parser.add_argument("--probe-only", action="store_true",
                        help="feature timing and 3 short throughput rounds, no full training")
    parser.add_argument("--compare-backward", action="store_true",
                        help="with --probe-only: time training steps with the backward products by MKL and "
                             "by oneDNN, alternating (lessonlib/layers/onednn_linear.py)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--seeds", type=int, default=10,
                        help="train this many seeds per split and score their ensemble (mean log prediction)")
    parser.add_argument("--trees-weight", type=float, default=BLEND_TREES_WEIGHT,
                        help="weight of the gradient-boosted trees in the blend of log predictions (default "
                             "chosen on the forecast split: lessonlib/tabular/trees.py); 0: networks only")
    parser.add_argument("--build-repeats", type=int, default=3, help="timed runs of join + features")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cpus, "
          f"load average {os.getloadavg()[0]:.1f}")

    folder = rossmann(args.preset)
    walls = []
    for _ in range(args.build_repeats):  # the first run also pays for a cold file cache
        start, cpu = time.perf_counter(), time.process_time()
        train, test = features.build(folder)
        walls.append(time.perf_counter() - start)
        print(f"join + features: {len(train) + len(test):,} rows ({len(train):,} train, {len(test):,} test), "
              f"{train.shape[1]} columns in {walls[-1]:.1f}s wall, {time.process_time() - cpu:.1f}s CPU, "
              f"load average {os.getloadavg()[0]:.1f}")
    print(f"join + features: best of {len(walls)} = {min(walls):.1f}s (target <= 15 s)")


    rows = features.sales_rows(train)
    if args.probe_only:
        throughput_probe(rows, args)
        return
    runs = [("lesson window", features.LESSON_VALID, False),
            ("forecast split", features.FORECAST_VALID, True)]
    runs = [r for r in runs if args.splits in ("both", "forecast" if r[2] else "lesson")]
    for label, window, forecast in runs:
        fit_rows, valid = features.split(rows, window, forecast=forecast)
        if args.max_log_dev:
            n = len(fit_rows)
            fit_rows = features.drop_outliers(fit_rows, args.max_log_dev)
            print(f"[{label}] dropped {n - len(fit_rows):,} training outlier days (log Sales more than "
                  f"{args.max_log_dev} from their store x weekday x promo median; up to 1.4 in the 14 days "
                  f"after a long closure)")
        if args.max_rows and len(fit_rows) > args.max_rows:
            fit_rows = fit_rows.sample(args.max_rows, random_state=args.seed)
        before = gemm_peak(peak_dtype(args))
        r = train_and_score(fit_rows, valid, args, label, n_seeds=args.seeds)
        peak = max(before, gemm_peak(peak_dtype(args)))  # the load may change during a long run
        print(f"[{label}] {peak_dtype(args)} GEMM peak (2048^3 matmul, best library, best of 5), higher of "
              f"before/after training: {peak:.1f} GFLOP/s")
        what = f"{args.seeds} network seed(s)" + (f" blended with the trees at weight {args.trees_weight}"
                                                   if args.trees_weight else "")
        print(f"[{label}] exp-RMSPE ({what}) {r['rmspe']:.4f} on {window[0]}..{window[1]}; "
              f"training {r['seconds']:.0f}s ({r['seconds'] / 60:.1f} min; {r['wall'] / 60:.1f} min with "
              f"processing, RMSPE factor and scoring), {r['rows_per_s']:,.0f} rows/s, "
              f"matmul {r['gflops']:.1f} GFLOP/s = {100 * r['gflops'] / peak:.0f}% of the GEMM peak")
        print(f"[{label}] the same predictions scored as the lesson's fast.ai 0.7 printed exp-RMSPE (mean of "
              f"256-row batch RMSPEs, rows in train.csv order): {r['lesson_style']:.4f} (the lesson: 0.0985)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
