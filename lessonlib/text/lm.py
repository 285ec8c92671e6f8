"""The IMDB language model recipe shared by notebooks 04 and 05: which texts, which sizes, how trained.

The LM reads the archive's train reviews (pos, neg and unsup) WITHOUT labels, minus any whose text is
also a test review (the archive repeats a few hundred across splits), so notebook 05's test accuracy
is measured on text no model has read. A seeded set of reviews is held out for validation perplexity.
Both presets read the full archive: the sample preset a seeded 20,000 of its ~75,000 LM reviews (what
two CPU cores read in minutes), the full preset all of them.

    data = lm_data("sample")                        # tokens, vocabulary, ids, loaders
    vectors = word_vectors(data, LM_PRESETS["sample"], seed=42)   # word2vec on the same text: the start
    learn = train_lm(data, "awd", LM_PRESETS["sample"], vectors=vectors)
    path = trained_lm_path("sample")            # load-or-train: the saved LM + vocabulary
"""

import argparse
import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lessonlib.core import seed_everything
from lessonlib.data import imdb_reviews
from lessonlib.engine import distributed as ddp
from lessonlib.engine.learner import Learner, accuracy
from lessonlib.engine.numerics import PRECISION_CHOICES
from lessonlib.engine.training import TrainConfig, build_learner, with_train
from lessonlib.text.awd_lstm import AWDConfig, awd_lstm_lm, lm_loss, plain_lstm_lm
from lessonlib.text.lm_callbacks import ResetState, RNNRegularizer
from lessonlib.text.lm_loader import LMLoader
from lessonlib.text.saved import read_lm_file, save_encoder
from lessonlib.text.tokenize import data_cache_dir, tokenize_texts
from lessonlib.text.vectors import init_embedding, train_word2vec
from lessonlib.text.vocab import Vocab, numericalize_docs


@dataclass(frozen=True)
class LMConfig:
    """One LM recipe: which texts, the model's sizes, how it trains (`train`). A typo in a field is an
    error; `with_train(cfg, lr=3e-3)` makes a variant."""

    archive: str = "full"                    # the IMDB archive whose train + unsup reviews the LM reads
    train_reviews: int | None = None         # a seeded subset of them to train on (None: all)
    valid_reviews: int | None = None         # held out for validation perplexity (None: 10%)
    emb_size: int = AWDConfig.emb_size       # the model's sizes (AWDConfig's defaults: the lesson's)
    n_hid: int = AWDConfig.n_hid
    n_layers: int = AWDConfig.n_layers
    min_freq: int = 3                        # the vocabulary: tokens seen at least this often,
    max_size: int = 60_000                   # the most frequent this many of them
    w2v_epochs: int = 0                      # word2vec epochs for the embedding's start (0: random)
    adaptive_cutoffs: tuple | None = None    # adaptive softmax cluster bounds (None: full softmax)
    bptt: int = 70                           # tokens per sequence (varied by about `jitter`)
    drop_mult: float = 0.7                   # scales every AWD-LSTM dropout
    # bs sequences a batch (per process under torchrun); precision "native": bf16 where the CPU has it
    train: TrainConfig = TrainConfig(epochs=10, lr=5e-3, bs=64, clip=0.3, precision="native")
    alpha: float = 2.0                       # activation regularisation (AR)
    beta: float = 1.0                        # temporal activation regularisation (TAR)
    jitter: int = 5

    def model_config(self, vocab_size: int) -> AWDConfig:
        """The AWD-LSTM of this recipe for a vocabulary of `vocab_size` (its dropouts x `drop_mult`)."""
        return AWDConfig(vocab_size, self.emb_size, self.n_hid, self.n_layers, drop_mult=self.drop_mult)


# sample: sized for two CPU cores (its timings are in benchmarks/README.md), an adaptive softmax, bf16
# where the CPU computes it natively, lr on the LR finder's falling stretch (notebook 04); full: the
# 2018 lesson's recipe, for a GPU
LM_PRESETS = {
    "sample": LMConfig(train_reviews=20_000, valid_reviews=1_000, emb_size=128, n_hid=384, n_layers=2,
                       max_size=30_000, w2v_epochs=5, adaptive_cutoffs=(2000, 8000), bptt=50, drop_mult=0.3,
                       train=TrainConfig(epochs=1, lr=0.01, bs=128, clip=0.3, precision="native")),
    "full": LMConfig(),
}
VALID_FRACTION = 0.1


def lm_path(size: str = "sample") -> Path:
    """Where notebook 04 saves the trained LM + vocabulary:
    `<data cache>/models/imdb_lm_<size>_<key>.pt`, the key a hash of LM_PRESETS[size], so a changed
    recipe never picks up a stale model."""
    recipe = asdict(LM_PRESETS[size]) if size in LM_PRESETS else None
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:10]
    return data_cache_dir() / "models" / f"imdb_lm_{size}_{key}.pt"


def lm_split(n_texts: int, valid_fraction: float = VALID_FRACTION, seed: int = 0,
             train_reviews: int | None = None, valid_reviews: int | None = None):
    """(train indices, valid indices) into the LM's `n_texts` texts: a seeded `valid_reviews` (default:
    `valid_fraction` of them) held out; `train_reviews` keeps only that many (seeded) for training."""
    order = np.random.default_rng(seed).permutation(n_texts)
    n_valid = valid_reviews or max(1, int(round(n_texts * valid_fraction)))
    train = order[n_valid:] if train_reviews is None else order[n_valid : n_valid + train_reviews]
    return train, order[:n_valid]


def without_test_texts(texts, test_texts) -> list[int]:
    """Indices of the `texts` that are not also a test review (exact text)."""
    test = set(test_texts)
    return [i for i, t in enumerate(texts) if t not in test]


def lm_texts(archive: str = "full", valid_fraction: float = VALID_FRACTION, seed: int = 0,
             train_reviews: int | None = None, valid_reviews: int | None = None):
    """(train texts, valid texts): the `archive`'s train reviews (pos, neg and unsup, labels dropped)
    that are not also test reviews, divided by `lm_split`. Test texts are read only to drop them."""
    texts = [*imdb_reviews(archive, "train")["text"], *imdb_reviews(archive, "unsup")["text"]]
    texts = [texts[i] for i in without_test_texts(texts, imdb_reviews(archive, "test")["text"])]
    train, valid = lm_split(len(texts), valid_fraction, seed, train_reviews, valid_reviews)
    return [texts[i] for i in train], [texts[i] for i in valid]


@dataclass
class LMData:
    """Everything the LM trains on: tokens, vocabulary and int32 ids for the train and valid texts."""

    train_tokens: list
    valid_tokens: list
    vocab: Vocab
    train_ids: list
    valid_ids: list

    def loaders(self, cfg: LMConfig, seed: int = 0):
        """(train loader: shuffled each epoch, jittered lengths; valid loader: in order, fixed bptt), at
        `cfg`'s batch size (per process under torchrun, where the Learner shards them), bptt and jitter."""
        train = LMLoader(self.train_ids, cfg.train.bs, cfg.bptt, shuffle=True, jitter=cfg.jitter, seed=seed)
        valid = LMLoader(self.valid_ids, cfg.train.bs, cfg.bptt)
        return train, valid

    def token_counts(self) -> np.ndarray:
        """How often each vocabulary id occurs in the training ids."""
        return np.bincount(np.concatenate(self.train_ids), minlength=len(self.vocab))

    def head(self, n_train: int, n_valid: int | None = None) -> "LMData":
        """The same data (same vocabulary) with only the first `n_train` training reviews and the first
        `n_valid` validation reviews (None: all): a short experiment whose every validation pass would
        otherwise cost as much as reading the whole validation split."""
        return LMData(self.train_tokens[:n_train], self.valid_tokens[:n_valid], self.vocab,
                      self.train_ids[:n_train], self.valid_ids[:n_valid])


def lm_data(size: str = "sample", n_workers: int | None = None) -> LMData:
    """The texts of LM_PRESETS[size], tokenized (cached), the vocabulary built on the training texts
    only, numericalized."""
    cfg = LM_PRESETS[size]
    train_texts, valid_texts = lm_texts(cfg.archive, train_reviews=cfg.train_reviews,
                                        valid_reviews=cfg.valid_reviews)
    train_tokens = tokenize_texts(train_texts, n_workers=n_workers)
    valid_tokens = tokenize_texts(valid_texts, n_workers=n_workers)
    vocab = Vocab.build(train_tokens, min_freq=cfg.min_freq, max_size=cfg.max_size)
    return LMData(train_tokens, valid_tokens, vocab, numericalize_docs(vocab, train_tokens),
                  numericalize_docs(vocab, valid_tokens))


def word_vectors(data: LMData, cfg: LMConfig, seed: int):
    """word2vec vectors (`cfg.emb_size` wide, `cfg.w2v_epochs` epochs) trained on the LM's own
    training tokens, one per vocabulary entry: the embedding's starting point. `seed` sets word2vec's
    starting vectors and its sampling; with one worker thread the same seed gives the same vectors."""
    return train_word2vec(data.train_tokens, data.vocab, cfg.emb_size, cfg.w2v_epochs, seed=seed, workers=1)


def build_lm(kind: str, vocab_size: int, cfg: LMConfig):
    """"awd" (the lesson's dropouts x cfg.drop_mult) or "plain" (no dropout) at cfg's sizes, with an
    adaptive softmax when cfg.adaptive_cutoffs is set."""
    if kind == "awd":
        return awd_lstm_lm(cfg.model_config(vocab_size), cfg.adaptive_cutoffs)
    if kind == "plain":
        return plain_lstm_lm(cfg.model_config(vocab_size), cfg.adaptive_cutoffs)
    raise ValueError(f"kind must be 'awd' or 'plain', got {kind!r}")


def perplexity(loss: float) -> float:
    return math.exp(loss)


def train_lm(data: LMData, kind: str, cfg: LMConfig, seed: int = 42, vectors=None, show: bool = True):
    """Seed torch with `seed`, then train an `lm_learner` (embedding from `vectors`) with the one-cycle
    schedule as `cfg.train` says. Returns the Learner (history in `learn.history`). For other options,
    seed, build the Learner with `lm_learner` and call its `fit` yourself."""
    seed_everything(seed)
    learn = lm_learner(data, kind, cfg, seed, vectors=vectors)
    learn.fit(cfg.train.epochs, cfg.train.lr, show=show)
    return learn


def lm_learner(data: LMData, kind: str, cfg: LMConfig, seed: int = 42, callbacks=(), vectors=None,
               init_bias: bool = True) -> Learner:
    """An untrained LM in a Learner (`build_learner` with `cfg.train`): output bias at the unigram
    frequencies (unless `init_bias` is False: as the layer initialises it, without them), embedding
    from `vectors`, hidden state reset each epoch, AR/TAR for "awd", plus any extra `callbacks`; `seed`
    orders the training batches. The weights start from torch's RNG: seed it first (`seed_everything`).
    What `train_lm` trains, and what to run the LR finder on."""
    train_dl, valid_dl = data.loaders(cfg, seed)
    model = build_lm(kind, len(data.vocab), cfg)
    if init_bias:
        model.init_bias(data.token_counts())
    if vectors is not None:
        init_embedding(model, vectors)
    callbacks = [ResetState(), *callbacks]
    if kind == "awd":
        callbacks.append(RNNRegularizer(cfg.alpha, cfg.beta))
    if cfg.adaptive_cutoffs:
        loss, metrics = model.decoder.loss, {}
    else:
        loss, metrics = lm_loss, {"acc": accuracy}
    return build_learner(model, (train_dl, valid_dl), loss, cfg.train, metrics=metrics, callbacks=callbacks)


def trained_lm_path(size: str = "sample", retrain: bool = False, seed: int = 42,
                        show: bool = True) -> Path:
    """The saved LM + vocabulary for `size` (path for `load_encoder`); trains it with LM_PRESETS[size]
    (as notebook 04 does) if the file is missing or `retrain`."""
    path = lm_path(size)
    if path.exists() and not retrain:
        read_lm_file(path)  # a broken or foreign file fails here, naming it, not later inside torch
        return path
    if size not in LM_PRESETS:
        raise ValueError(f"unknown size {size!r}; known: {sorted(LM_PRESETS)}")
    cfg = LM_PRESETS[size]
    data = lm_data(size)
    vectors = word_vectors(data, cfg, seed) if cfg.w2v_epochs else None
    learn = train_lm(data, "awd", cfg, seed=seed, vectors=vectors, show=show)
    return save_encoder(path, learn.model.encoder, data.vocab, learn.model.decoder)


def main(argv=None) -> None:
    """`python -m lessonlib.text.lm [--size full]`: train the IMDB LM and save its encoder (also under
    `torchrun --nproc_per_node=N -m lessonlib.text.lm --size full`: each process reads its own rows)."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--size", default="full", choices=sorted(LM_PRESETS))
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--precision", default=None, choices=PRECISION_CHOICES,
                   help="the preset's (native: bf16 where the hardware has it) unless given")
    args = p.parse_args(argv)
    preset = LM_PRESETS[args.size]
    cfg = with_train(preset, epochs=args.epochs or preset.train.epochs,
                     precision=args.precision or preset.train.precision)
    data = lm_data(args.size)
    vectors = word_vectors(data, cfg, args.seed) if cfg.w2v_epochs else None
    learn = train_lm(data, "awd", cfg, seed=args.seed, vectors=vectors)
    if ddp.is_main():
        print("saved", save_encoder(lm_path(args.size), learn.model.encoder, data.vocab, learn.model.decoder))


if __name__ == "__main__":
    main()
