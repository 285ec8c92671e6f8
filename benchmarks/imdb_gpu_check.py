"""The whole full-size IMDB pipeline in a fixed wall-clock budget on one GPU: the LM (the full preset's
model, on the 67,500 train+unsup reviews it trains on) and then ULMFiT fine-tuning on the 25,000
labelled train reviews, tested on all 25,000 test reviews. It shows that the GPU path works end to
end and measures tokens/s; its accuracy is that of a time-boxed run, below what the full recipe
(`benchmarks/imdb_full.py` after `python -m lessonlib.text.lm --size full`) reaches.

Two steps, so the GPU machine needs neither spaCy nor the dataset:

    .venv/bin/python benchmarks/imdb_gpu_check.py export imdb_ids.npz       # tokenize, vocabulary, ids
    python benchmarks/imdb_gpu_check.py run imdb_ids.npz --minutes 8        # train within the budget

`run` first measures the LM's and the classifier's tokens/s on a few batches, reserves the time the
classifier's stages (`--stages`, one epoch each by default) and their test passes need, and gives the
LM what is left: as many LM epochs as fit, or one pass over as many (seeded) reviews as fit.
`export --size sample` and `run --preset sample` try the same code on a CPU.

With `--json PATH` the figures (test_accuracy, scratch_test_accuracy with `--scratch-epochs`,
lm_valid_perplexity, tokens/s, wall_seconds, device, date, command) are written after every stage,
so a run cut short still reports. Commit each GPU run's file as `benchmarks/results/imdb_full_<date>.json`:
notebook 05's "At full size" section shows every such file. The GPU run this project is waiting for:

    python benchmarks/imdb_gpu_check.py run imdb_ids.npz --minutes 9 --scratch-epochs 3 \
        --json "$OUT/imdb_full_$(date +%F).json"
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LESSONLIB_PROGRESS", "0")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from imdb_full import TrainTimer, subset  # noqa: E402  (a sibling script: benchmarks/ is on sys.path)

from lessonlib.engine.training import with_train  # noqa: E402
from lessonlib.text.lm import LM_PRESETS  # noqa: E402

PARTS = ("train", "unsup", "test")


def export(out: Path, size: str) -> None:
    """Token ids of every review of `size` (train, unsup, test, each review once) + the LM's split and
    vocabulary (built on the LM's training texts only, as notebook 04 does) into one .npz."""
    from lessonlib.data import imdb_reviews
    from lessonlib.text.lm import lm_split, without_test_texts
    from lessonlib.text.tokenize import tokenize_texts
    from lessonlib.text.vocab import Vocab

    cfg = LM_PRESETS["full"]
    frames = {p: imdb_reviews(size, p) for p in PARTS}
    tokens = {p: tokenize_texts(list(frames[p]["text"])) for p in PARTS}
    lm_docs = tokens["train"] + tokens["unsup"]  # the order lm_texts uses, before it drops test texts
    keep = np.array(without_test_texts([*frames["train"]["text"], *frames["unsup"]["text"]],
                                       frames["test"]["text"]))
    train, valid = lm_split(len(keep), train_reviews=cfg.train_reviews, valid_reviews=cfg.valid_reviews)
    lm_train, lm_valid = keep[train], keep[valid]
    vocab = Vocab.build([lm_docs[i] for i in lm_train], cfg.min_freq, cfg.max_size)
    if len(vocab) > np.iinfo(np.uint16).max:
        raise ValueError(f"vocabulary of {len(vocab)} does not fit uint16")
    arrays = {"itos": np.array(json.dumps(vocab.itos)), "lm_train": lm_train, "lm_valid": lm_valid}
    for p in PARTS:
        ids = [vocab.numericalize(t) for t in tokens[p]]
        arrays[f"{p}_ids"] = np.concatenate(ids).astype(np.uint16)
        arrays[f"{p}_len"] = np.array([len(a) for a in ids], dtype=np.int32)
        arrays[f"{p}_label"] = frames[p]["label"].to_numpy().astype(np.int8)
    np.savez_compressed(out, **arrays)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB): vocab {len(vocab):,}, "
          + ", ".join(f"{p} {len(tokens[p]):,} reviews / {len(arrays[p + '_ids']):,} tokens" for p in PARTS))


def load(path: Path):
    """(vocab, {part: (list of int32 id arrays, labels)}, lm train indices, lm valid indices)."""
    from lessonlib.text.vocab import Vocab

    blob = np.load(path)
    vocab = Vocab(json.loads(str(blob["itos"])))
    parts = {}
    for p in PARTS:
        ids = blob[f"{p}_ids"].astype(np.int32)
        parts[p] = (np.split(ids, np.cumsum(blob[f"{p}_len"])[:-1]), blob[f"{p}_label"].astype(np.int64))
    return vocab, parts, blob["lm_train"], blob["lm_valid"]


def n_tokens(docs) -> int:
    return int(sum(len(d) for d in docs))


def fit_lm(docs, valid_docs, vocab, cfg, epochs, seed, callbacks=()):
    """The notebook-04 LM recipe (lm_learner, one-cycle at cfg.train.lr) on these id arrays."""
    from lessonlib.core import seed_everything
    from lessonlib.text.lm import LMData, lm_learner

    data = LMData([], [], vocab, docs, valid_docs)
    seed_everything(seed)
    learn = lm_learner(data, "awd", cfg, seed=seed, callbacks=callbacks)
    learn.fit(epochs, cfg.train.lr)
    return learn


def run(args, work: Path) -> None:
    """The time-boxed pipeline; `work` holds the saved encoders."""
    from lessonlib.core import seed_everything
    from lessonlib.text.classifier_data import ClassificationDataset, ClassifierData
    from lessonlib.text.fine_tune import FineTuneConfig, classifier_learner, gradual_unfreezing
    from lessonlib.text.saved import save_encoder

    start = time.perf_counter()
    deadline = start + args.minutes * 60
    seed_everything(args.seed)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"seed {args.seed}; device {device}, torch {torch.__version__}; budget {args.minutes:g} min")
    results = {"command": " ".join(["python", *sys.argv]), "date": time.strftime("%Y-%m-%d"),
               "device": device, "torch": torch.__version__, "preset": args.preset, "seed": args.seed}

    def record(**figures) -> None:
        """Add figures and write the JSON now, so a run cut short still reports what it reached."""
        results.update(figures, wall_seconds=round(time.perf_counter() - start, 1))
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))

    vocab, parts, lm_train_idx, lm_valid_idx = load(args.ids)
    lm_docs = parts["train"][0] + parts["unsup"][0]
    lm_train = [lm_docs[i] for i in lm_train_idx]
    lm_valid = [lm_docs[i] for i in lm_valid_idx[: args.lm_valid_reviews]]
    clf = ClassifierData(vocab, ClassificationDataset(*parts["train"]), ClassificationDataset(*parts["test"]))
    clf_train_tokens, clf_test_tokens = int(clf.train.lengths.sum()), int(clf.test.lengths.sum())
    preset = LM_PRESETS[args.preset]
    cfg = with_train(preset, bs=args.lm_bs or preset.train.bs, lr=args.lm_lr or preset.train.lr,
                     precision="auto")  # bf16 autocast on CUDA
    print(f"data loaded in {time.perf_counter() - start:.1f}s: vocab {len(vocab):,}; "
          f"LM {len(lm_train):,} train reviews ({n_tokens(lm_train):,} tokens), valid {len(lm_valid):,}; "
          f"classifier {len(clf.train):,} "
          f"train / {len(clf.test):,} test reviews ({clf_train_tokens:,} / {clf_test_tokens:,} tokens)")

    # 1. measured rates (skipped with --lm-epochs): the LM at the recipe's bs and at ours, the classifier
    if args.lm_epochs is None:
        cfg, rates = measure_rates(args, cfg, preset, vocab, lm_train, lm_valid, clf, work)
        record(**rates)
        train_rate, eval_rate = rates["clf_train_tokens_per_s"], rates["clf_eval_tokens_per_s"]
        # epochs in all-layers units (a head-only epoch runs the encoder forward only); one test pass each
        head, last, every = args.stages
        units = head * train_rate / eval_rate + 0.7 * last + every + args.scratch_epochs
        test_passes = 1 + (1 if args.scratch_epochs else 0)
        clf_seconds = clf_train_tokens * units / train_rate + test_passes * clf_test_tokens / eval_rate
        print(f"classifier bs {args.bs}: {train_rate:,.0f} training tokens/s (all layers), {eval_rate:,.0f} "
              f"tokens/s evaluating -> estimate for stages {args.stages}, {args.scratch_epochs} scratch "
              f"epochs and {test_passes} test passes: {clf_seconds:.0f}s")

    # 2. the LM: --lm-epochs, or as many epochs as the time the classifier leaves allows, or part of one
    if args.lm_epochs is None:
        lm_seconds = deadline - TrainTimer.now() - 1.15 * clf_seconds - 15
        if lm_seconds < 30:
            raise SystemExit(f"only {lm_seconds:.0f}s left for the LM: give more --minutes")
        order = np.random.default_rng(args.seed).permutation(len(lm_train))
        budget_tokens = rates["lm_tokens_per_s"][cfg.train.bs] * lm_seconds / 1.05  # the valid pass
        epochs = max(1, int(budget_tokens // n_tokens(lm_train)))
        docs = lm_train if epochs > 1 else first_tokens([lm_train[i] for i in order], budget_tokens)
        print(f"{lm_seconds:.0f}s left for the LM", end="; ")
    else:
        epochs, docs = args.lm_epochs, lm_train
    print(f"LM: {epochs} epoch(s) of {len(docs):,} reviews ({n_tokens(docs):,} tokens, "
          f"{n_tokens(docs) / n_tokens(lm_train):.0%} of the LM's training set), "
          f"bs {cfg.train.bs}, lr {cfg.train.lr:g}")
    learn = fit_lm(docs, lm_valid, vocab, cfg, epochs, args.seed)
    record(lm_valid_perplexity=float(np.exp(learn.history["valid_loss"].iloc[-1])), lm_epochs=epochs,
           lm_train_tokens=n_tokens(docs) * epochs)
    print(f"LM valid perplexity {results['lm_valid_perplexity']:.1f} "
          f"after {time.perf_counter() - start:.0f}s")
    lm_file = save_encoder(work / "lm.pt", learn.model.encoder, vocab, learn.model.decoder)
    del learn
    torch.cuda.empty_cache()

    # 3. fine-tuning from the LM (ULMFiT stages by default) and, with --scratch-epochs, from scratch
    t = time.perf_counter()
    tuned = with_train(FineTuneConfig(), bs=args.bs, precision=cfg.train.precision)
    seed_everything(args.seed)
    learn = classifier_learner(lm_file, clf, tuned, pretrained=True, seed=args.seed)
    gradual_unfreezing(learn, args.lrs, args.stages, factor=args.factor)
    test_acc = float(learn.evaluate(clf.test_loader(args.bs))["acc"])  # the test set, read once
    print(f"LM-initialised classifier fine-tuned in {time.perf_counter() - t:.0f}s: "
          f"test accuracy {test_acc:.4f}")
    record(test_accuracy=test_acc)
    if args.scratch_epochs:
        t = time.perf_counter()
        seed_everything(args.seed)
        learn = classifier_learner(lm_file, clf, tuned, pretrained=False, seed=args.seed)
        learn.fit(args.scratch_epochs, args.scratch_lr)
        record(scratch_test_accuracy=float(learn.evaluate(clf.test_loader(args.bs))["acc"]),
               scratch_epochs=args.scratch_epochs)
        print(f"from scratch ({args.scratch_epochs} epochs at {args.scratch_lr:g}): test accuracy "
              f"{results['scratch_test_accuracy']:.4f} in {time.perf_counter() - t:.0f}s")
    print(f"total {time.perf_counter() - start:.0f}s of a {args.minutes * 60:.0f}s budget; "
          f"LM-initialised test accuracy {test_acc:.4f} on {len(clf.test):,} reviews "
          "(a time-boxed run; the full recipe's target is 0.945)")
    record()


def measure_rates(args, cfg, preset, vocab, lm_train, lm_valid, clf, work):
    """(cfg, rates): LM training tokens/s at the recipe's bs and at `cfg`'s (bf16 autocast, or fp32 if
    that fails: the returned `cfg` then trains in fp32), and the classifier's training (all layers) and
    evaluation tokens/s."""
    from lessonlib.text.classifier_data import ClassifierData
    from lessonlib.text.fine_tune import FineTuneConfig, classifier_learner
    from lessonlib.text.lm import build_lm
    from lessonlib.text.saved import save_encoder

    lm_rates = {}
    for bs in dict.fromkeys((preset.train.bs, cfg.train.bs)):
        timer = TrainTimer(lambda b: b[1].numel(), warmup=15)
        probe = first_tokens(lm_train, 50 * bs * cfg.bptt)  # ~50 batches, the first 15 not timed
        try:
            fit_lm(probe, lm_valid[:20], vocab, with_train(cfg, bs=bs), 1, args.seed, [timer])
        except RuntimeError as e:  # a one-shot check should still report something: retry in fp32
            if cfg.train.precision == "fp32":
                raise
            print(f"bf16 autocast failed ({e}); going on in fp32")
            cfg, timer = with_train(cfg, precision="fp32"), TrainTimer(lambda b: b[1].numel(), warmup=15)
            fit_lm(probe, lm_valid[:20], vocab, with_train(cfg, bs=bs), 1, args.seed, [timer])
        lm_rates[bs] = timer.rate
        print(f"LM bs {bs}: {timer.rate:,.0f} training tokens/s -> one epoch of the recipe's "
              f"{n_tokens(lm_train):,} tokens in {n_tokens(lm_train) / timer.rate:.0f}s")
    untrained = save_encoder(work / "untrained.pt", build_lm("awd", len(vocab), cfg).encoder, vocab)
    small = ClassifierData(vocab, subset(clf.train, 40 * args.bs, seed=0),
                           subset(clf.test, 40 * args.bs, seed=0))
    timer = TrainTimer(lambda b: int((b[0] != vocab.pad_id).sum()), warmup=15)
    clf_cfg = with_train(FineTuneConfig(), bs=args.bs, precision=cfg.train.precision)
    learn = classifier_learner(untrained, small, clf_cfg, pretrained=False, seed=args.seed, callbacks=[timer])
    learn.fit(1, clf_cfg.train.lr, show=False)
    t = TrainTimer.now()
    learn.evaluate(small.test_loader(args.bs))
    eval_rate = int(small.test.lengths.sum()) / (TrainTimer.now() - t)
    return cfg, {"lm_tokens_per_s": lm_rates, "clf_train_tokens_per_s": timer.rate,
                 "clf_eval_tokens_per_s": eval_rate}


def first_tokens(docs, n: int) -> list:
    """The first reviews of `docs` holding at least `n` tokens (all of them if they hold fewer)."""
    return docs[: int(np.searchsorted(np.cumsum([len(d) for d in docs]), n)) + 1]


def ints(text: str) -> tuple:
    return tuple(int(v) for v in text.split(","))


def floats(text: str) -> tuple:
    return tuple(float(v) for v in text.split(","))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="tokenize and numericalize every review into one .npz")
    e.add_argument("out", type=Path)
    e.add_argument("--size", default="full", choices=["full", "sample"])
    r = sub.add_parser("run", help="the time-boxed LM + classifier on the ids")
    r.add_argument("ids", type=Path)
    r.add_argument("--minutes", type=float, default=8.0)
    r.add_argument("--seed", type=int, default=42)
    r.add_argument("--lm-bs", type=int, default=None, help="default: the preset's")
    r.add_argument("--lm-lr", type=float, default=None, help="default: the preset's")
    r.add_argument("--preset", default="full", choices=sorted(LM_PRESETS), help="LM sizes (sample: CPU try)")
    r.add_argument("--lm-valid-reviews", type=int, default=1000, help="held-out reviews for LM perplexity")
    r.add_argument("--bs", type=int, default=64, help="classifier batch size")
    r.add_argument("--lm-epochs", type=int, default=None, help="train the LM this long (no rate probes)")
    r.add_argument("--stages", type=ints, default=(1, 1, 1), help="epochs per ULMFiT stage: head,last,all")
    r.add_argument("--lrs", type=floats, default=(2e-2, 1e-2, 1e-3), help="peak head LR per stage")
    r.add_argument("--factor", type=float, default=2.6, help="discriminative LR factor (1: one LR)")
    r.add_argument("--scratch-epochs", type=int, default=0, help="also train from scratch this long")
    r.add_argument("--scratch-lr", type=float, default=5e-3)
    r.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args()
    if args.cmd == "export":
        export(args.out, args.size)
    else:
        with tempfile.TemporaryDirectory() as work:
            run(args, Path(work))

if __name__ == "__main__":
    main()
