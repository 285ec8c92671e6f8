"""Binary bag-of-words features: which words (and word pairs) occur in each text.

    bow = BagOfWords(ngram_range=(1, 2), min_df=2, max_features=10_000).fit(train_texts)
    X_train = bow.transform(train_texts)            # torch sparse CSR, float32, 0/1
    X_valid = bow.transform(valid_texts, output="scipy")  # or a scipy CSR matrix, or "dense"
    dl = rows_loader(X_train, y_train, batch_size=250, shuffle=True, seed=42)

The vocabulary is fit on the training texts only; words never seen there are ignored later.
"""

import re
import warnings
from collections import Counter

import numpy as np
import scipy.sparse as sp
import torch

TOKEN_PATTERN = r"[a-z0-9]+(?:'[a-z]+)?"  # words and numbers, keeping contractions like "don't"
OUTPUTS = ("sparse", "dense", "scipy")


def words(text: str, pattern: str = TOKEN_PATTERN) -> list[str]:
    """Lower-cased tokens of `text`, with IMDB's `<br />` line breaks removed."""
    return re.findall(pattern, text.lower().replace("<br />", " "))


def ngrams(tokens: list[str], ngram_range: tuple[int, int]) -> set[str]:
    """The distinct n-grams of `tokens` for n in ngram_range (inclusive), words joined by spaces."""
    lo, hi = ngram_range
    return {" ".join(tokens[i:i + n]) for n in range(lo, hi + 1) for i in range(len(tokens) - n + 1)}


def _check_texts(texts) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("pass a list of texts, not one string (wrap it: [text])")
    texts = list(texts)
    bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
    if bad:
        raise TypeError(f"every text must be a str; got {len(bad)} other values, e.g. {bad[0]}")
    return texts


class BagOfWords:
    """Binary n-gram features with a vocabulary learnt from the training texts.

    ngram_range: (1, 1) unigrams, (1, 2) unigrams and bigrams. min_df: keep n-grams found in at least
    this many training texts. max_features: then keep only the most frequent ones (by document count,
    ties alphabetical). Feature j is `features[j]`; features are ordered by document count, highest first.
    """

    def __init__(self, ngram_range: tuple[int, int] = (1, 1), min_df: int = 1,
                 max_features: int | None = None, token_pattern: str = TOKEN_PATTERN):
        lo, hi = ngram_range
        if not (isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi):
            raise ValueError(f"ngram_range must be (lo, hi) with 1 <= lo <= hi, got {ngram_range}")
        if not (isinstance(min_df, int) and min_df >= 1):
            raise ValueError(f"min_df must be an int >= 1 (a number of texts), got {min_df!r}")
        if max_features is not None and not (isinstance(max_features, int) and max_features >= 1):
            raise ValueError(f"max_features must be None or an int >= 1, got {max_features!r}")
        self.ngram_range, self.min_df, self.max_features = (lo, hi), min_df, max_features
        self.token_pattern = token_pattern
        self.features: list[str] | None = None
        self.vocab: dict[str, int] | None = None
        self.doc_freq: np.ndarray | None = None  # in how many training texts each feature occurs

    def _grams(self, text: str) -> set[str]:
        return ngrams(words(text, self.token_pattern), self.ngram_range)

    def fit(self, texts) -> "BagOfWords":
        """Learn the vocabulary from `texts` (the training texts only)."""
        texts = _check_texts(texts)
        if not texts:
            raise ValueError("fit needs at least one text")
        counts = Counter(g for t in texts for g in self._grams(t))
        kept = sorted(((g, c) for g, c in counts.items() if c >= self.min_df), key=lambda gc: (-gc[1], gc[0]))
        if self.max_features is not None:
            kept = kept[:self.max_features]
        if not kept:
            raise ValueError(f"the vocabulary is empty: no n-gram occurs in at least min_df={self.min_df} "
                             f"of the {len(texts)} texts. Lower min_df or pass more texts.")
        self.features = [g for g, _ in kept]
        self.vocab = {g: i for i, g in enumerate(self.features)}
        self.doc_freq = np.array([c for _, c in kept], dtype=np.int64)
        return self

    @property
    def n_features(self) -> int:
        self._check_fitted()
        return len(self.features)

    def _check_fitted(self):
        if self.vocab is None:
            raise RuntimeError("BagOfWords is not fitted yet: call fit(train_texts) first")

    def transform(self, texts, output: str = "sparse"):
        """Texts -> (n_texts, n_features) float32 matrix of 0/1: a torch sparse CSR tensor ("sparse"),
        a dense torch tensor ("dense") or a scipy.sparse CSR matrix ("scipy")."""
        self._check_fitted()
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        texts = _check_texts(texts)
        indptr, indices = [0], []
        for t in texts:
            cols = sorted(self.vocab[g] for g in self._grams(t) if g in self.vocab)
            indices += cols
            indptr.append(len(indices))
        X = sp.csr_matrix((np.ones(len(indices), dtype=np.float32), np.array(indices, dtype=np.int64),
                           np.array(indptr, dtype=np.int64)), shape=(len(texts), len(self.features)))
        return X if output == "scipy" else to_tensor(X, sparse=output == "sparse")


def to_tensor(X: sp.csr_matrix, sparse: bool = True) -> torch.Tensor:
    """A scipy CSR matrix as a float32 torch tensor: sparse CSR, or dense."""
    X = sp.csr_matrix(X, dtype=np.float32)
    if not sparse:
        return torch.from_numpy(X.toarray())
    with warnings.catch_warnings():  # torch calls its sparse CSR support "beta"; it works for what we do
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(torch.from_numpy(X.indptr.astype(np.int64)),
                                       torch.from_numpy(X.indices.astype(np.int64)),
                                       torch.from_numpy(X.data), size=X.shape, check_invariants=False)


def _as_rows(X):
    """Something whose rows can be picked cheaply: scipy CSR for sparse input, the tensor if dense."""
    if sp.issparse(X):
        return sp.csr_matrix(X, dtype=np.float32)
    if isinstance(X, torch.Tensor) and X.layout != torch.strided:
        X = X.to_sparse_csr().cpu()
        return sp.csr_matrix((X.values().numpy(), X.col_indices().numpy(), X.crow_indices().numpy()),
                             shape=tuple(X.shape))
    if isinstance(X, torch.Tensor):
        return X
    raise TypeError(f"X must be a torch tensor (sparse or dense) or a scipy sparse matrix, "
                    f"got {type(X).__name__}")


class RowsCollate:
    """Turns a list of row numbers into an (x, y) batch; sparse rows become a torch sparse CSR tensor,
    or a dense one with `dense`."""

    def __init__(self, X, y: torch.Tensor, dense: bool = False):
        self.X, self.y, self.dense = X, y, dense

    def __call__(self, idx: list[int]):
        idx_t = torch.as_tensor(idx, dtype=torch.long)
        if isinstance(self.X, torch.Tensor):
            x = self.X[idx_t]
        else:
            x = to_tensor(self.X[np.asarray(idx)], sparse=not self.dense)
        return x, self.y[idx_t]


def rows_loader(X, y, batch_size: int | None = None, shuffle: bool = False, seed: int = 0,
                dense_batches: bool = False):
    """A DataLoader of (x, y) batches over the rows of the feature matrix `X` (torch sparse or dense, or
    scipy sparse) and the labels `y`. batch_size=None gives one full batch. Shuffling draws from its own
    torch.Generator seeded with `seed`, so runs are reproducible. Sparse X gives sparse CSR batches, or
    dense ones with `dense_batches` (on a CPU, a dense matmul trains a small layer faster than torch's
    sparse backward does, while X itself stays sparse in memory)."""
    rows = _as_rows(X)
    y = y if isinstance(y, torch.Tensor) else torch.as_tensor(np.array(y))
    if rows.shape[0] != len(y):
        raise ValueError(f"X has {rows.shape[0]} rows but y has {len(y)} labels: they must match")
    if len(y) == 0:
        raise ValueError("X and y are empty: a loader needs at least one row")
    batch_size = len(y) if batch_size is None else batch_size
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 (or None for one full batch), got {batch_size}")
    generator = torch.Generator().manual_seed(seed)
    collate = RowsCollate(rows, y, dense_batches)
    return torch.utils.data.DataLoader(range(len(y)), batch_size=batch_size, shuffle=shuffle,
                                       generator=generator, collate_fn=collate, num_workers=0)
