"""Rossmann: which design shows the lesson's two results, and at what cost? Embeddings against one-hot
codes and the network against the gradient-boosted trees, paired by seed, on the lesson's window.

    python benchmarks/rossmann_design.py --threads 2                                 # 1,115 stores, all rows
    python benchmarks/rossmann_design.py --threads 2 --train-rows 200000 --layers 256,128 --epochs 4

Every arm trains on the same rows (with --train-rows, one random sample of the training days, drawn
once, not per seed) with seeds seed, seed + 1, ...; each seed's embedding and one-hot networks start
from the same RNG state. Prints each seed's exp-RMSPE per arm, the paired differences, the trees, and
the wall time of each arm, so a small design can be checked against the full run's answer.
"""

import argparse
import os
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from lessonlib.engine.training import TrainConfig
from lessonlib.tabular import features
from lessonlib.tabular.experiment import SalesConfig, fit_sales_model, split_rows
from lessonlib.tabular.model import TabularConfig, exp_rmspe
from lessonlib.tabular.preprocess import TabularProcessor
from lessonlib.tabular.trees import TreeConfig, fit_sales_trees


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="full", choices=["full", "sample"])
    parser.add_argument("--train-rows", type=int, default=None, help="a random sample of the training days")
    parser.add_argument("--stores", type=int, default=None,
                        help="a random draw of this many stores, all their rows (training and validation)")
    parser.add_argument("--layers", type=lambda s: tuple(int(v) for v in s.split(",")), default=(1000, 500))
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=2e-2)
    parser.add_argument("--bs", type=int, default=1024)
    parser.add_argument("--max-log-dev", type=float, default=0.0, help="drop outlier training days (0: keep)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--arms", default="embeddings,one-hot,trees")
    parser.add_argument("--tree-rounds", type=int, default=TreeConfig.max_iter)
    parser.add_argument("--tree-lr", type=float, default=TreeConfig.learning_rate)
    parser.add_argument("--tree-means", choices=["store", "none"], default="store",
                        help="trees on the network's inputs plus per-store mean sales, or on its inputs only")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average "
          f"{os.getloadavg()[0]:.1f}; {vars(args)}", flush=True)

    fit_rows, valid = split_rows(args.preset)
    if args.stores:
        chosen = np.random.default_rng(0).choice(fit_rows["Store"].unique(), args.stores, replace=False)
        fit_rows, valid = fit_rows[fit_rows["Store"].isin(chosen)], valid[valid["Store"].isin(chosen)]
    if args.max_log_dev:
        fit_rows = features.drop_outliers(fit_rows, args.max_log_dev)
    if args.train_rows and args.train_rows < len(fit_rows):
        fit_rows = fit_rows.sample(args.train_rows, random_state=0).sort_index()
    proc = TabularProcessor(features.CAT_NAMES, features.CONT_NAMES).fit(fit_rows)
    print(f"train {len(fit_rows):,} rows of {fit_rows['Store'].nunique():,} stores, valid {len(valid):,}",
          flush=True)
    arms = args.arms.split(",")
    seeds = list(range(args.seed, args.seed + args.seeds))
    scores, seconds = {}, {}
    ps = ((0.001, 0.01) + (0.01,) * len(args.layers))[:len(args.layers)]  # the lesson's, then 0.01
    model = TabularConfig(layers=args.layers, ps=ps, fast_layers=True)
    cfg = SalesConfig(model=model, train=TrainConfig(epochs=args.epochs, lr=args.lr, bs=args.bs, clip=1.0))
    for arm in arms:
        start = time.perf_counter()
        if arm == "trees":
            trees = fit_sales_trees(fit_rows, proc, TreeConfig(
                max_iter=args.tree_rounds, learning_rate=args.tree_lr,
                groups=TreeConfig.groups if args.tree_means == "store" else ()), seed=args.seed)
            score = exp_rmspe(torch.from_numpy(trees.predict_log(valid)),
                              torch.tensor(np.log(valid["Sales"].to_numpy()))).item()
            scores[arm] = dict.fromkeys(seeds, score)  # deterministic: one fit, the same for every seed
        else:
            variant = replace(cfg, model=replace(model, one_hot=arm == "one-hot"))
            scores[arm] = {}
            for s in seeds:
                run = fit_sales_model(fit_rows, valid, proc, variant, seed=s, show=False, device="cpu")
                scores[arm][s] = run.rmspe
                print(f"  {arm} seed {s}: {run.rmspe:.4f} ({run.seconds:.0f}s, "
                      f"{args.epochs * len(fit_rows) / run.seconds:,.0f} rows/s)", flush=True)
        seconds[arm] = time.perf_counter() - start
        print(f"{arm}: {seconds[arm]:.0f}s", flush=True)
    table = pd.DataFrame(scores)
    print(table.round(4).to_string())
    if "one-hot" in table and "embeddings" in table:
        diff = table["one-hot"] - table["embeddings"]
        print(f"one-hot minus embeddings: {diff.round(4).tolist()} (embeddings ahead in "
              f"{int((diff > 0).sum())} of {len(diff)})")
    if "trees" in table and "embeddings" in table:
        diff = table["trees"] - table["embeddings"]
        print(f"trees minus network: {diff.round(4).tolist()} (network ahead in {int((diff > 0).sum())} of "
              f"{len(diff)}); network mean {table['embeddings'].mean():.4f}, "
              f"trees {table['trees'].iloc[0]:.4f}")
    print("seconds per arm:", {k: round(v) for k, v in seconds.items()}, f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
