"""Pretrained word vectors as a starting point for the embedding: word2vec trained here on the LM's own
unlabelled text (`train_word2vec`, with gensim), or a GloVe / word2vec text file (`load_vectors`)."""

import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from lessonlib.text.tokenize import SPECIAL_TOKENS


@dataclass
class PretrainedVectors:
    """`weights` (len(vocab), dim): pretrained rows where found, the mean of the found rows elsewhere;
    `found` marks which vocabulary entries were in the file."""

    weights: torch.Tensor
    found: torch.Tensor

    @property
    def coverage(self) -> float:
        """Fraction of the vocabulary's entries found in the file."""
        return float(self.found.float().mean())

    def token_coverage(self, vocab) -> float:
        """Fraction of the training tokens (by vocab.counts) whose entry was found."""
        total = sum(vocab.counts.values())
        hit = sum(c for t, c in vocab.counts.items() if t in vocab.stoi and self.found[vocab.stoi[t]])
        return hit / max(total, 1)


def load_vectors(path, vocab, dim: int | None = None) -> PretrainedVectors:
    """Read a text vectors file (`word v1 ... vD` per line; an optional word2vec header `N D`) and keep
    the rows for tokens in `vocab` (GloVe is lower-case, like our tokens)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no vectors file at {path}")
    rows: dict[int, list[float]] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip("\n").rstrip().split(" ")
            if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                dim = dim or int(parts[1])  # word2vec header
                continue
            if len(parts) < 2:
                continue
            if dim is None:
                dim = len(parts) - 1
            if len(parts) - 1 != dim:
                raise ValueError(f"{path}:{lineno}: {len(parts) - 1} numbers where {dim} were expected "
                                 "(give dim= to match the file)")
            i = vocab.stoi.get(parts[0])
            if i is not None and i not in rows:
                rows[i] = [float(v) for v in parts[1:]]
    if dim is None:
        raise ValueError(f"{path} holds no vectors")
    weights = torch.zeros(len(vocab), dim)
    found = torch.zeros(len(vocab), dtype=torch.bool)
    if rows:
        idx = torch.tensor(list(rows))
        weights[idx] = torch.tensor(list(rows.values()))
        found[idx] = True
        weights[~found] = weights[found].mean(0)
    return PretrainedVectors(weights, found)


def _stable_hash(text: str) -> int:
    """gensim seeds each word's starting vector with this; Python's own hash() changes every process."""
    return zlib.crc32(text.encode())


def train_word2vec(docs, vocab, dim: int, epochs: int = 5, window: int = 5, seed: int = 0,
                   workers: int | None = None) -> PretrainedVectors:
    """word2vec (CBOW with negative sampling, gensim) trained on `docs` (token lists), one vector per
    entry of `vocab`.

    Each word's vector is learned from the words around it within `window`, so words used in the same
    contexts ("superb", "excellent") end up close: the embedding starts out knowing which words are
    alike instead of from random numbers. gensim's C loops do this in seconds to minutes on a CPU.
    Entries word2vec never saw (the special tokens it skips, words rarer than the vocabulary's cut)
    get the mean vector. With `workers=1` the result is the same on every run (more workers race)."""
    import os

    from gensim.models import Word2Vec

    min_count = min((vocab.counts.get(t, 0) for t in vocab.itos[len(SPECIAL_TOKENS):]), default=1)
    model = Word2Vec(docs, vector_size=dim, window=window, min_count=max(min_count, 1), epochs=epochs,
                     seed=seed, workers=workers or os.cpu_count() or 1, sg=0, hashfxn=_stable_hash)
    weights = torch.zeros(len(vocab), dim)
    found = torch.tensor([t in model.wv.key_to_index for t in vocab.itos])
    if found.any():
        rows = torch.from_numpy(model.wv[[t for t in vocab.itos if t in model.wv.key_to_index]].copy())
        weights[found] = rows
        weights[~found] = rows.mean(0)
    return PretrainedVectors(weights, found)


def init_embedding(model, vectors: PretrainedVectors) -> None:
    """Copy the vectors into a language model's (or encoder's) embedding (the tied decoder shares it)."""
    encoder = getattr(model, "encoder", model)
    weight = encoder.embedding.weight
    if weight.shape != vectors.weights.shape:
        dim = vectors.weights.shape[1]
        raise ValueError(f"the embedding is {tuple(weight.shape)} but the vectors are "
                         f"{tuple(vectors.weights.shape)}: build the model with emb_size={dim} "
                         "and the same vocabulary")
    with torch.no_grad():
        weight.copy_(vectors.weights)
        weight[encoder.embedding.pad_id] = 0
