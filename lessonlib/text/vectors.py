"""Pretrained word vectors as a starting point for the embedding: word2vec trained here on the LM's own
unlabelled text (`train_word2vec`, with gensim)."""

import zlib
from dataclasses import dataclass

import torch

from lessonlib.text.tokenize import SPECIAL_TOKENS


@dataclass
class PretrainedVectors:
    """`weights` (len(vocab), dim): pretrained rows where found, the mean of the found rows elsewhere;
    `found` marks which vocabulary entries word2vec learned a vector for."""

    weights: torch.Tensor
    found: torch.Tensor

    @property
    def coverage(self) -> float:
        """Fraction of the vocabulary's entries with a learned vector."""
        return float(self.found.float().mean())


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
