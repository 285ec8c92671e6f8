"""The IMDB language model recipe shared by notebooks 04 and 05: which texts, which sizes, how trained.

The LM sees the train reviews (pos, neg, unsup) WITHOUT labels; 10% of them (seeded) are held out for
validation perplexity. Test reviews are never used, so notebook 05 can evaluate on them honestly.

    data = lm_data("sample")                        # tokens, vocabulary, ids, loaders
    learn = train_lm(data, "awd", LM_PRESETS["sample"])
    path = imdb_language_model("sample")            # load-or-train: the saved encoder + vocabulary
"""

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lessonlib.core import seed_everything
from lessonlib.text.awd_lstm import (
    ResetState,
    RNNRegularizer,
    awd_lstm_lm,
    lm_accuracy,
    lm_loss,
    plain_lstm_lm,
    save_encoder,
)
from lessonlib.text.lm_data import LMLoader
from lessonlib.text.tokenize import data_cache_dir, tokenize_texts
from lessonlib.text.vocab import Vocab

# sample: sized for ~2 quiet CPU cores (notebook 04 in a few minutes); full: the lesson's model, for a GPU
LM_PRESETS = {
    "sample": dict(train_reviews=2000, emb_size=64, n_hid=192, n_layers=2, min_freq=3, max_size=60_000,
                   bs=32, bptt=50, epochs=2, lr=1e-2, drop_mult=0.5, wd=0.01, clip=0.3, alpha=2.0, beta=1.0,
                   jitter=5),
    "full": dict(train_reviews=None, emb_size=400, n_hid=1152, n_layers=3, min_freq=3, max_size=60_000,
                 bs=64, bptt=70, epochs=10, lr=5e-3, drop_mult=0.7, wd=0.01, clip=0.3, alpha=2.0, beta=1.0,
                 jitter=5),
}
VALID_FRACTION = 0.1


def lm_path(size: str = "sample") -> Path:
    """Where notebook 04 saves the trained encoder + vocabulary:
    `<data cache>/models/imdb_lm_<size>_<key>.pt`, the key a hash of LM_PRESETS[size], so a changed
    recipe never picks up a stale model."""
    key = hashlib.sha256(json.dumps(LM_PRESETS.get(size), sort_keys=True).encode()).hexdigest()[:10]
    return data_cache_dir() / "models" / f"imdb_lm_{size}_{key}.pt"


def lm_split(n_texts: int, valid_fraction: float = VALID_FRACTION, seed: int = 0,
             train_reviews: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, valid indices) into the LM's `n_texts` texts: a seeded `valid_fraction` held
    out; `train_reviews` keeps only that many (seeded) for training, to fit a time budget."""
    order = np.random.default_rng(seed).permutation(n_texts)
    n_valid = max(1, int(round(n_texts * valid_fraction)))
    train = order[n_valid:] if train_reviews is None else order[n_valid : n_valid + train_reviews]
    return train, order[:n_valid]


def lm_texts(size: str = "sample", valid_fraction: float = VALID_FRACTION, seed: int = 0,
             train_reviews: int | None = None):
    """(train texts, valid texts): the train split's reviews (pos, neg and unsup, labels dropped),
    divided by `lm_split`. The test split is not touched."""
    from lessonlib.data import imdb_reviews

    texts = [*imdb_reviews(size, "train")["text"], *imdb_reviews(size, "unsup")["text"]]
    train, valid = lm_split(len(texts), valid_fraction, seed, train_reviews)
    return [texts[i] for i in train], [texts[i] for i in valid]


@dataclass
class LMData:
    """Everything the LM trains on: tokens, vocabulary and int32 ids for the train and valid texts."""

    train_tokens: list
    valid_tokens: list
    vocab: Vocab
    train_ids: list
    valid_ids: list

    def loaders(self, bs: int = 64, bptt: int = 70, jitter: int = 5, seed: int = 0, rank: int = 0,
                world_size: int = 1):
        """(train loader: shuffled each epoch, jittered lengths; valid loader: in order, fixed bptt)."""
        train = LMLoader(self.train_ids, bs, bptt, shuffle=True, jitter=jitter, seed=seed, rank=rank,
                         world_size=world_size)
        valid = LMLoader(self.valid_ids, bs, bptt, rank=rank, world_size=world_size)
        return train, valid


def lm_data(size: str = "sample", min_freq: int = 3, max_size: int = 60_000, n_workers: int | None = None,
            train_reviews: int | None = None, **_ignored) -> LMData:
    """Tokenize (cached), build the vocabulary on the training texts only, numericalize."""
    train_texts, valid_texts = lm_texts(size, train_reviews=train_reviews)
    train_tokens = tokenize_texts(train_texts, n_workers=n_workers)
    valid_tokens = tokenize_texts(valid_texts, n_workers=n_workers)
    vocab = Vocab.build(train_tokens, min_freq=min_freq, max_size=max_size)
    return LMData(train_tokens, valid_tokens, vocab, [vocab.numericalize(d) for d in train_tokens],
                  [vocab.numericalize(d) for d in valid_tokens])


def build_lm(kind: str, vocab_size: int, cfg: dict, adaptive_cutoffs=None):
    """"awd" (the lesson's dropouts x cfg["drop_mult"]) or "plain" (no dropout) at cfg's sizes."""
    sizes = dict(emb_size=cfg["emb_size"], n_hid=cfg["n_hid"], n_layers=cfg["n_layers"])
    if kind == "awd":
        return awd_lstm_lm(vocab_size, drop_mult=cfg["drop_mult"], adaptive_cutoffs=adaptive_cutoffs, **sizes)
    if kind == "plain":
        return plain_lstm_lm(vocab_size, adaptive_cutoffs=adaptive_cutoffs, **sizes)
    raise ValueError(f"kind must be 'awd' or 'plain', got {kind!r}")


def perplexity(loss: float) -> float:
    return math.exp(loss)


def train_lm(data: LMData, kind: str, cfg: dict, seed: int = 42, epochs: int | None = None, show: bool = True,
             amp=False, device=None, adaptive_cutoffs=None, callbacks=()):
    """Build and train an LM through the Learner: one-cycle, AdamW, clipping, hidden state reset each
    epoch, AR/TAR for "awd", plus any extra `callbacks`. Returns the Learner (history in `learn.history`)."""
    from lessonlib.learner import Learner

    seed_everything(seed)
    import lessonlib.distributed as ddp

    rank, world = (ddp.rank(), ddp.world_size()) if ddp.launched_by_torchrun() else (0, 1)
    train_dl, valid_dl = data.loaders(cfg["bs"], cfg["bptt"], cfg["jitter"], seed, rank, world)
    model = build_lm(kind, len(data.vocab), cfg, adaptive_cutoffs)
    callbacks = [ResetState(), *callbacks]
    if kind == "awd":
        callbacks.append(RNNRegularizer(cfg["alpha"], cfg["beta"]))
    if adaptive_cutoffs:
        loss, metrics = model.decoder.loss, {}
    else:
        loss, metrics = lm_loss, {"acc": lm_accuracy}
    learn = Learner(model, train_dl, valid_dl, loss, metrics=metrics, wd=cfg["wd"], clip=cfg["clip"],
                    callbacks=callbacks, amp=amp, device=device)
    learn.fit(epochs or cfg["epochs"], cfg["lr"], show=show)
    return learn


def imdb_language_model(size: str = "sample", retrain: bool = False, seed: int = 42,
                        show: bool = True) -> Path:
    """The saved LM encoder + vocabulary for `size` (path for `load_encoder`); trains it with
    LM_PRESETS[size] (as notebook 04 does) if the file is missing or `retrain`."""
    path = lm_path(size)
    if path.exists() and not retrain:
        return path
    if size not in LM_PRESETS:
        raise ValueError(f"unknown size {size!r}; known: {sorted(LM_PRESETS)}")
    cfg = LM_PRESETS[size]
    data = lm_data(size, **cfg)
    learn = train_lm(data, "awd", cfg, seed=seed, show=show)
    return save_encoder(path, learn.model.encoder, data.vocab, learn.model.decoder)


def main(argv=None) -> None:
    """`python -m lessonlib.text.lm [--size full]`: train the IMDB LM and save its encoder (also under
    `torchrun --nproc_per_node=N -m lessonlib.text.lm --size full`: each process reads its own rows)."""
    import argparse

    import lessonlib.distributed as ddp

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--size", default="full", choices=sorted(LM_PRESETS))
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--amp", default=None, help="None (bf16 on CUDA), False, bf16 or fp16")
    args = p.parse_args(argv)
    cfg = LM_PRESETS[args.size]
    data = lm_data(args.size, **cfg)
    amp = {"None": None, "False": False}.get(args.amp, args.amp)
    learn = train_lm(data, "awd", cfg, seed=args.seed, epochs=args.epochs, amp=amp)
    if not ddp.launched_by_torchrun() or ddp.is_main():
        print("saved", save_encoder(lm_path(args.size), learn.model.encoder, data.vocab, learn.model.decoder))


if __name__ == "__main__":
    main()
