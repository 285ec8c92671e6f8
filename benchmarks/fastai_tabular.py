"""Training speed of fastai 2.8.12's `tabular_learner` against lessonlib's own Rossmann network, in one
process on the full Rossmann data (open days with sales; validation = the lesson's window
2014-08-01..2014-09-17, training = every other date), same columns, target log(Sales), layers, epochs,
batch size 1024, one-cycle at peak LR 2e-2, gradient norm clipped at 1.0, decoupled weight decay 0.01
(each library's default optimizer: fastai's Adam, lessonlib's fused torch AdamW).

Both networks use the lesson's embedding widths min(50, (c + 1) // 2) (c counts the unknown/#na# code),
dropout ps (0.001, 0.01) and emb_drop 0.04, and the sigmoid range (0, 1.2 * max log(Sales)).
fastai: TabularPandas with Categorify + FillMissing + Normalize, `fit_one_cycle`, no progress bar or
logging. lessonlib: `fit_sales_model` with fast_layers=True.

Per round and library it prints training rows/s = training rows x epochs / wall time of the fit (each
epoch's validation pass included, for both; data preprocessing excluded and timed separately) and the
validation exp-RMSPE sqrt(mean(((y - yhat) / y) ** 2)) on Sales of the raw network (for lessonlib also
with its per-store cap and RMSPE factor). Rounds alternate which library goes first. At the end: the
median rows/s of each and their ratio lessonlib / fastai. fastai is imported into the same process, so
lessonlib's figure may differ a little from a run without it (benchmarks/rossmann.py).

fastai is not a project dependency: it runs from a venv of its own beside the project's, with the
same torch and lessonlib's pinned packages (fastai's torchvision does not import on a CPU torch from
PyPI; fastai.tabular does not need it). From the repository root:

    python3 -m venv ../fastai_venv
    ../fastai_venv/bin/pip install -c requirements.lock torch==2.13.0 fastai==2.8.12 numpy pandas \\
        scikit-learn scipy matplotlib tqdm filelock spacy gensim ipython ipywidgets
    ../fastai_venv/bin/pip install --no-deps -e .
    ../fastai_venv/bin/python benchmarks/fastai_tabular.py --threads 2    # 3 rounds, 1 epoch, (1000, 500)
    ../fastai_venv/bin/python benchmarks/fastai_tabular.py --max-rows 20000 --rounds 1 --threads 1  # smoke
"""

import argparse
import os
import statistics
import time

import fastai
import fastai.tabular.all as fta
import numpy as np
import pandas as pd
import torch

from lessonlib.engine.training import TrainConfig
from lessonlib.tabular import features
from lessonlib.tabular.experiment import SalesConfig, fit_sales_model, split_rows
from lessonlib.tabular.model import TabularConfig, emb_size_lesson, exp_rmspe, y_range_for
from lessonlib.tabular.preprocess import TabularProcessor

LR, BS, VALID_BS, CLIP, EMB_DROP = 2e-2, 1024, 4096, 1.0, 0.04
CAT, CONT = features.CAT_NAMES, features.CONT_NAMES


def rmspe(sales, pred_log) -> float:
    """exp-RMSPE of log-Sales predictions against the Sales of the validation rows."""
    return exp_rmspe(torch.as_tensor(np.asarray(pred_log)), torch.tensor(np.log(np.asarray(sales)))).item()


def fastai_data(fit_rows, valid):
    """The fastai DataLoaders over the training then validation rows (validation = the last ones)."""
    df = pd.concat([fit_rows[CAT + CONT + ["Sales"]], valid[CAT + CONT + ["Sales"]]], ignore_index=True)
    df["LogSales"] = np.log(df.pop("Sales").to_numpy(np.float64)).astype(np.float32)
    splits = (list(range(len(fit_rows))), list(range(len(fit_rows), len(df))))
    # copies: FillMissing appends its `_na` columns to the cat_names list it is given
    to = fta.TabularPandas(df, [fta.Categorify, fta.FillMissing, fta.Normalize], list(CAT), list(CONT),
                           y_names="LogSales", y_block=fta.RegressionBlock(), splits=splits)
    return to, to.dataloaders(bs=BS, val_bs=VALID_BS)


def fastai_round(to, dls, fit_rows, valid, args, ps, seed):
    emb_szs = {n: emb_size_lesson(len(to.classes[n])) for n in to.cat_names}
    y_range = y_range_for(np.log(fit_rows["Sales"]))
    config = fta.tabular_config(ps=list(ps), embed_p=EMB_DROP, y_range=y_range)
    fta.set_seed(seed)
    learn = fta.tabular_learner(dls, layers=list(args.layers), emb_szs=emb_szs, config=config,
                                cbs=fta.GradientClip(CLIP))
    with learn.no_bar(), learn.no_logging():
        start = time.perf_counter()
        learn.fit_one_cycle(args.epochs, LR)
        seconds = time.perf_counter() - start
        pred, _ = learn.get_preds(dl=dls.valid)
    width = learn.model.n_emb + learn.model.n_cont
    return seconds, rmspe(valid["Sales"], pred.squeeze(1).numpy()), f"input width {width}"


def lessonlib_round(proc, fit_rows, valid, args, ps, seed):
    model = TabularConfig(layers=tuple(args.layers), ps=ps, emb_drop=EMB_DROP, fast_layers=True)
    cfg = SalesConfig(model=model, train=TrainConfig(epochs=args.epochs, lr=LR, bs=BS, clip=CLIP))
    start = time.perf_counter()
    run = fit_sales_model(fit_rows, valid, proc, cfg, seed=seed, show=False, device="cpu")
    outside = time.perf_counter() - start - run.seconds
    raw = run.learn.get_preds(run.learn.valid_dl)[0].numpy()  # learn.model: no cap, no RMSPE factor
    return run.seconds, rmspe(valid["Sales"], raw), (f"input width {run.learn.model.n_inputs}; with cap + "
                                                     f"factor {run.rmspe:.4f}; coding etc. {outside:.1f}s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--layers", type=int, nargs="+", default=[1000, 500], help="hidden layer widths")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-rows", type=int, default=None, help="train on a random subset of this many rows")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    os.environ.setdefault("LESSONLIB_PROGRESS", "0")  # no progress bars on either side
    torch.set_num_threads(args.threads)
    ps = ((0.001, 0.01) + (0.01,) * len(args.layers))[:len(args.layers)]

    start = time.perf_counter()
    fit_rows, valid = split_rows("full")
    if args.max_rows and args.max_rows < len(fit_rows):
        fit_rows = fit_rows.sample(n=args.max_rows, random_state=args.seed)
    print(f"features: {time.perf_counter() - start:.1f}s; train {len(fit_rows):,} rows, "
          f"valid {len(valid):,}; torch {torch.__version__}, fastai {fastai.__version__}, "
          f"{torch.get_num_threads()} thread(s); layers {args.layers}, {args.epochs} epoch(s), "
          f"batch {BS}, lr {LR}", flush=True)
    start = time.perf_counter()
    to, dls = fastai_data(fit_rows, valid)
    print(f"[fastai] preprocessing (TabularPandas + DataLoaders): {time.perf_counter() - start:.1f}s",
          flush=True)
    start = time.perf_counter()
    proc = TabularProcessor(CAT, CONT).fit(fit_rows)
    print(f"[lessonlib] preprocessing (TabularProcessor.fit; coding is per round): "
          f"{time.perf_counter() - start:.1f}s", flush=True)

    rates = {"fastai": [], "lessonlib": []}
    jobs = {"fastai": lambda seed: fastai_round(to, dls, fit_rows, valid, args, ps, seed),
            "lessonlib": lambda seed: lessonlib_round(proc, fit_rows, valid, args, ps, seed)}
    for r in range(args.rounds):
        for name in (("fastai", "lessonlib") if r % 2 == 0 else ("lessonlib", "fastai")):
            seconds, score, note = jobs[name](args.seed + r)
            rates[name].append(len(fit_rows) * args.epochs / seconds)
            print(f"round {r + 1} [{name:9}] {rates[name][-1]:>9,.0f} rows/s ({seconds:.1f}s), "
                  f"exp-RMSPE {score:.4f} ({note}; {torch.get_num_threads()} threads)", flush=True)
    med = {name: statistics.median(v) for name, v in rates.items()}
    print(f"median rows/s: fastai {med['fastai']:,.0f}, lessonlib {med['lessonlib']:,.0f}; "
          f"lessonlib / fastai = {med['lessonlib'] / med['fastai']:.2f}")


if __name__ == "__main__":
    main()
