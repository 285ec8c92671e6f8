"""Labelled reviews for the sentiment classifier (notebook 05): token-id datasets capped per review,
batches of similar length padded at the end (`classification_loader`, `padding_fraction`), and the
IMDB train / validation / test split (`imdb_classifier_data`, `ClassifierData`).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from lessonlib.data import imdb_reviews
from lessonlib.text.tokenize import tokenize_texts
from lessonlib.text.vocab import numericalize_docs

EVAL_BS = 64  # reviews per batch when a model only scores them (no gradients kept)


def _cap(ids: np.ndarray, max_tokens: int | None) -> np.ndarray:
    if max_tokens is None or len(ids) <= max_tokens:
        return ids
    return np.concatenate([ids[:1], ids[len(ids) - max_tokens + 1 :]])


class ClassificationDataset(torch.utils.data.Dataset):
    """Reviews as int64 token-id arrays with their integer labels.

    `max_tokens` caps each review at its first token (`xxbos`) plus its last `max_tokens - 1` tokens
    (the end of a review, where the verdict usually is); None keeps everything. This caps compute on
    CPU; the encoder itself copes with any length.
    """

    def __init__(self, ids: Sequence, labels: Sequence[int], max_tokens: int | None = None):
        if len(ids) != len(labels):
            raise ValueError(f"got {len(ids)} reviews but {len(labels)} labels; they must pair up")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1 (or None for no cap), got {max_tokens}")
        self.ids = [_cap(np.asarray(a, dtype=np.int64), max_tokens) for a in ids]
        for i, a in enumerate(self.ids):
            if a.ndim != 1 or len(a) == 0:
                raise ValueError(
                    f"review {i} has no tokens (shape {a.shape}); numericalize the tokenizer's output, "
                    "which starts every review with xxbos, even an empty one"
                )
        self.labels = np.asarray(labels, dtype=np.int64)
        self.lengths = np.array([len(a) for a in self.ids], dtype=np.int64)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return self.ids[i], self.labels[i]


class BucketSampler(Sampler):
    """Random but length-bucketed batches of indices, for training (fast.ai's SortishSampler).

    Each epoch: shuffle, cut into chunks of `bs * bucket` reviews, sort each chunk by length, cut it
    into batches, shuffle the batches. Every review appears exactly once per epoch, batches hold
    reviews of similar length (little padding), and the order still changes every epoch. A last
    batch of one review joins the one before (BatchNorm cannot train on a single example).
    """

    def __init__(self, lengths, bs: int, bucket: int = 50, seed: int = 0):
        if bs < 1 or bucket < 1:
            raise ValueError(f"bs and bucket must be at least 1, got bs={bs}, bucket={bucket}")
        self.lengths, self.bs, self.bucket = np.asarray(lengths), bs, bucket
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self):
        perm = torch.randperm(len(self.lengths), generator=self.generator).numpy()
        chunk = self.bs * self.bucket
        batches = []
        for start in range(0, len(perm), chunk):
            idx = perm[start : start + chunk]
            idx = idx[np.argsort(-self.lengths[idx], kind="stable")]
            batches += [idx[i : i + self.bs].tolist() for i in range(0, len(idx), self.bs)]
        if len(batches) > 1 and len(batches[-1]) == 1:  # BatchNorm cannot train on a batch of one
            last = batches.pop()
            batches[-1] += last
        order = torch.randperm(len(batches), generator=self.generator).tolist()
        return iter([batches[i] for i in order])

    def __len__(self):
        n = math.ceil(len(self.lengths) / self.bs)
        return n - 1 if n > 1 and len(self.lengths) % self.bs == 1 else n


class SortedSampler(Sampler):
    """Batches of indices sorted by decreasing length, for validation (the least padding possible)."""

    def __init__(self, lengths, bs: int):
        if bs < 1:
            raise ValueError(f"bs must be at least 1, got {bs}")
        self.order = np.argsort(-np.asarray(lengths), kind="stable")
        self.bs = bs

    def __iter__(self):
        return iter([self.order[i : i + self.bs].tolist() for i in range(0, len(self.order), self.bs)])

    def __len__(self):
        return math.ceil(len(self.order) / self.bs)


def pad_collate(batch, pad_idx: int):
    """(token ids, label) pairs -> (tokens `(bs, longest)` padded at the end with `pad_idx`, labels)."""
    longest = max(len(ids) for ids, _ in batch)
    tokens = torch.full((len(batch), longest), pad_idx, dtype=torch.long)
    for row, (ids, _) in enumerate(batch):
        tokens[row, : len(ids)] = torch.as_tensor(ids)
    labels = torch.tensor([int(y) for _, y in batch], dtype=torch.long)
    return tokens, labels


def classification_loader(
    dataset: ClassificationDataset, bs: int, pad_idx: int, train: bool, seed: int = 0, bucket: int = 50
) -> DataLoader:
    """A loader of `(tokens, labels)` batches: length-bucketed random order when `train`, sorted by
    length otherwise. Single process (num_workers=0) and seeded, so runs repeat exactly."""
    lengths = dataset.lengths
    sampler = BucketSampler(lengths, bs, bucket, seed) if train else SortedSampler(lengths, bs)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=partial(pad_collate, pad_idx=pad_idx))


def padding_fraction(lengths, batches) -> float:
    """Share of the padded positions in the given batches of indices (one epoch of a sampler)."""
    lengths = np.asarray(lengths)
    real = padded = 0
    for batch in batches:
        batch_lengths = lengths[list(batch)]
        real += batch_lengths.sum()
        padded += batch_lengths.max() * len(batch_lengths)
    return float(1 - real / padded)


@dataclass
class ClassifierData:
    """Labelled IMDB reviews as token ids of the LM's vocabulary, with their texts (for display and for
    NBSVM): `train` to fit on, `valid` (carved from the labelled train reviews) for anything watched
    or chosen during training, `test` scored once at the end."""

    vocab: object
    train: ClassificationDataset
    test: ClassificationDataset
    valid: ClassificationDataset | None = None
    train_texts: list = field(default_factory=list)
    valid_texts: list = field(default_factory=list)
    test_texts: list = field(default_factory=list)

    def loaders(self, bs: int, seed: int = 0):
        """(train loader: length-bucketed, reshuffled each epoch; valid loader sorted by length, or None)."""
        pad = self.vocab.pad_id
        valid = None if self.valid is None else classification_loader(self.valid, 2 * bs, pad, train=False)
        return classification_loader(self.train, bs, pad, train=True, seed=seed), valid

    def test_loader(self, bs: int = EVAL_BS):
        return classification_loader(self.test, bs, self.vocab.pad_id, train=False)

    def subset(self, n: int, seed: int = 0) -> "ClassifierData":
        """The same data with only `n` training reviews, as many of each class (seeded)."""
        labels = self.train.labels
        classes = np.unique(labels)
        if n % len(classes) or n // len(classes) > min(np.sum(labels == c) for c in classes):
            raise ValueError(f"cannot take {n} reviews, {len(classes)} classes in equal parts, from "
                             f"{len(labels)} training reviews ({np.bincount(labels).tolist()} per class)")
        keep = balanced_indices(labels, n // len(classes), seed)
        train = ClassificationDataset([self.train.ids[i] for i in keep], labels[keep])
        texts = [self.train_texts[i] for i in keep] if self.train_texts else []
        return ClassifierData(self.vocab, train, self.test, self.valid, texts, self.valid_texts,
                              self.test_texts)


def balanced_indices(labels, per_class: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of `per_class` seeded-random items of each class in `labels`."""
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class]
                                   for c in np.unique(labels)]))


def imdb_classifier_data(vocab, size: str = "sample", max_tokens: int | None = None, n_valid: int = 0,
                         seed: int = 0, n_workers: int | None = None) -> ClassifierData:
    """The labelled train and test reviews of archive `size`, tokenized (cached) and numericalized with
    `vocab` (the LM's), each capped at `max_tokens` (see `ClassificationDataset`); a seeded `n_valid` of
    the train reviews, as many of each class, are set aside for validation."""
    parts = {}
    for split in ("train", "test"):
        df = imdb_reviews(size, split)
        tokens = tokenize_texts(list(df["text"]), n_workers=n_workers)
        parts[split] = (list(df["text"]), numericalize_docs(vocab, tokens), df["label"].to_numpy())
    texts, ids, labels = parts["train"]
    valid = balanced_indices(labels, n_valid // len(np.unique(labels)), seed)
    train = np.setdiff1d(np.arange(len(texts)), valid)

    def part(texts, ids, labels, idx):
        return ClassificationDataset([ids[i] for i in idx], labels[idx], max_tokens), [texts[i] for i in idx]

    train_ds, train_texts = part(texts, ids, labels, train)
    valid_ds, valid_texts = part(texts, ids, labels, valid) if n_valid else (None, [])
    test_texts, test_ids, test_labels = parts["test"]
    test_ds = ClassificationDataset(test_ids, test_labels, max_tokens)
    return ClassifierData(vocab, train_ds, test_ds, valid_ds, train_texts, valid_texts, test_texts)
