"""The IMDB classifier at full size (25,000 labelled train reviews, 25,000 test): ULMFiT fine-tuning of
notebook 04's language model, for a GPU. Target: at least 94.5% test accuracy without outside
pretraining (the 2018 lesson reached about 94.5%, ULMFiT 95.4% with a Wikipedia LM).

    .venv/bin/python benchmarks/imdb_full.py                       # one GPU
    torchrun --nproc_per_node=4 benchmarks/imdb_full.py            # several GPUs (DDP via the Learner)
    .venv/bin/python benchmarks/imdb_full.py --check 200           # a short check: 200 batches, tokens/s
    .venv/bin/python benchmarks/imdb_full.py --size sample --check 20   # the same code path on a CPU

Measured on one H200 (benchmarks/imdb_gpu_check.py, bf16): the classifier trains at ~292k tokens/s
with every layer unfrozen, ~29 s per epoch of the 25,000 train reviews, plus ~9 s per test pass; the
full LM trains at ~211k tokens/s at bs 64, ~98 s per epoch.

It loads the LM encoder saved by notebook 04 (`lessonlib.text.lm.trained_lm_path`, which trains it
with the full preset if the file is missing: hours on one GPU). It prints the FLOPs per token of the
encoder, the expected time per epoch from them (an ESTIMATE, at an assumed achieved rate), and then
the measured figures: tokens/s, seconds per epoch, test accuracy after each unfreezing stage.
"""

import argparse
import os
import time

os.environ.setdefault("LESSONLIB_PROGRESS", "0")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lessonlib.core import seed_everything  # noqa: E402
from lessonlib.engine import distributed as ddp  # noqa: E402
from lessonlib.engine.callbacks import Callback  # noqa: E402
from lessonlib.engine.training import with_train  # noqa: E402
from lessonlib.text.classifier import ClassifierConfig  # noqa: E402
from lessonlib.text.classifier_data import ClassificationDataset, imdb_classifier_data  # noqa: E402
from lessonlib.text.fine_tune import FineTuneConfig, classifier_learner, gradual_unfreezing  # noqa: E402
from lessonlib.text.lm import trained_lm_path  # noqa: E402


def encoder_flops_per_token(cfg: dict) -> float:
    """Forward multiply-adds x2 of the LSTM stack per token (the embedding lookup and head are negligible)."""
    sizes = [cfg["emb_size"]] + [cfg["n_hid"]] * (cfg["n_layers"] - 1) + [cfg["emb_size"]]
    return sum(2 * 4 * h * (i + h) for i, h in zip(sizes[:-1], sizes[1:], strict=True))


def estimate(cfg: dict, train_tokens: int, test_tokens: int, achieved_tflops: float) -> dict:
    """Seconds per epoch when every layer trains (forward + backward = 3x forward) and the test set
    is evaluated once, at `achieved_tflops` sustained."""
    f = encoder_flops_per_token(cfg)
    train_s = 3 * f * train_tokens / (achieved_tflops * 1e12)
    test_s = f * test_tokens / (achieved_tflops * 1e12)
    return {"flops_per_token": f, "train_s": train_s, "test_s": test_s}


class TrainTimer(Callback):
    """Callback: tokens (`count(batch)`) and seconds of the training part of each epoch, leaving out the
    first `warmup` training batches of the run (CUDA-synchronised); `rate` is tokens/s."""

    def __init__(self, count, warmup: int = 0):
        self.count, self.warmup = count, warmup
        self.seen, self.tokens, self.seconds, self.start = 0, 0, 0.0, None

    @staticmethod
    def now() -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    def before_epoch(self, learn):
        self.start = self.now() if self.seen >= self.warmup else None

    def before_batch(self, learn):
        if learn.training:
            self.seen += 1
            if self.start is None and self.seen == self.warmup + 1:
                self.start = self.now()
            if self.seen > self.warmup:
                self.tokens += self.count(learn.batch)

    def before_validate(self, learn):
        if self.start is not None:
            self.seconds += self.now() - self.start
            self.start = None

    after_fit = before_validate  # a fit without validation ends its last epoch here

    @property
    def rate(self) -> float:
        return self.tokens / max(self.seconds, 1e-9)


def subset(ds, n: int, seed: int):
    """n reviews of a ClassificationDataset, drawn at random (the --check mode)."""
    idx = np.random.default_rng(seed).permutation(len(ds))[:n]
    return ClassificationDataset([ds.ids[i] for i in idx], ds.labels[idx])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", default="full", choices=["full", "sample"])
    p.add_argument("--lm-file", default=None, help="saved LM encoder (default: notebook 04's for --size)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--bs", type=int, default=64, help="batch size per process")
    p.add_argument("--lrs", default="2e-2,1e-2,1e-3", help="peak LR of the head in each stage")
    p.add_argument("--epochs", default="1,1,3", help="epochs of each stage: head, +last layer, all")
    p.add_argument("--max-tokens", type=int, default=None, help="cap each review (default: none)")
    p.add_argument("--max-len", type=int, default=1400, help="tokens of each review kept for pooling")
    p.add_argument("--tflops", type=float, default=25.0, help="assumed achieved TFLOP/s for the estimate")
    p.add_argument("--check", type=int, default=None, help="only train this many batches (all layers)")
    args = p.parse_args()
    main_proc = ddp.is_main() and int(os.environ.get("RANK", "0")) == 0

    lm_file = args.lm_file or trained_lm_path(args.size, show=main_proc)
    cfg = torch.load(lm_file, map_location="cpu", weights_only=True)["config"]
    from lessonlib.text.saved import load_encoder

    _, vocab = load_encoder(lm_file)
    t = time.perf_counter()
    data = imdb_classifier_data(vocab, args.size, max_tokens=args.max_tokens)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    n_train, n_test = int(data.train.lengths.sum()), int(data.test.lengths.sum())
    est = estimate(cfg, n_train, n_test, args.tflops)
    if main_proc:
        print(f"data: {len(data.train)} train / {len(data.test)} test reviews, "
              f"{n_train:,} / {n_test:,} tokens (prepared in {time.perf_counter() - t:.1f}s)")
        print(f"encoder {cfg['emb_size']}/{cfg['n_hid']}/{cfg['n_layers']}: "
              f"{est['flops_per_token'] / 1e6:.1f} MFLOP per token forward")
        print(f"ESTIMATE (not measured) at {args.tflops:g} TFLOP/s sustained on one GPU: "
              f"{est['train_s']:.0f}s to train one epoch with every layer unfrozen + {est['test_s']:.0f}s "
              f"to evaluate the test set; divide the training part by the number of GPUs under torchrun")

    lrs = tuple(float(v) for v in args.lrs.split(","))
    epochs = tuple(int(v) for v in args.epochs.split(","))
    if args.check:  # the costliest stage only (every layer trains), on check x bs reviews per process
        epochs = (0, 0, 1)
        data.train = subset(data.train, args.check * args.bs * world, args.seed)
        data.test = subset(data.test, 4 * args.bs * world, args.seed)
    timer = TrainTimer(lambda batch: int((batch[0] != vocab.pad_id).sum()))
    cfg = with_train(FineTuneConfig(model=ClassifierConfig(max_len=args.max_len)), bs=args.bs)
    seed_everything(args.seed)
    learn = classifier_learner(lm_file, data, cfg, pretrained=True, seed=args.seed, callbacks=[timer])
    gradual_unfreezing(learn, lrs, epochs, factor=1.0, show=main_proc)  # one LR for every layer group
    test_acc = float(learn.evaluate(data.test_loader(args.bs))["acc"])  # the test set, read once
    if main_proc:
        rate = timer.tokens * world / max(timer.seconds, 1e-9)  # every process trains the same amount
        tflops = 3 * est["flops_per_token"] * rate / 1e12
        print(f"measured: {timer.tokens * world:,} training tokens in {timer.seconds:.1f}s: "
              f"{rate:,.0f} tokens/s over {world} process(es), {tflops:.2f} TFLOP/s when every layer "
              "trains (a frozen stage does less work)")
        print(f"so one all-layers epoch over the {len(data.train) if not args.check else 'full'} train set "
              f"takes ~{n_train / rate:.0f}s of training here, plus the test evaluation")
        print(learn.history.round(4).to_string(index=False))
        if not args.check:
            print(f"test accuracy: {test_acc:.4f} (target >= 0.945)")
        print(f"device: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}, "
              f"torch {torch.__version__}")


if __name__ == "__main__":
    main()
