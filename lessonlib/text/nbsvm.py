"""NB-weighted logistic regression on binary bag-of-words features (Wang & Manning 2012, "NBSVM").

Each feature is scaled by its naive-Bayes log-count ratio r = log((p/|p|) / (q/|q|)), where p and q
are the (smoothed) counts of documents containing it among the positive and negative examples; a
logistic regression is then fit on the scaled features. The strong, cheap baseline for sentiment.
Features come from `lessonlib.bow` (binarised unigrams+bigrams); this module only sees matrices.
"""

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from lessonlib.bow import BagOfWords


def nb_ratio(X, y, alpha: float = 1.0) -> np.ndarray:
    """The naive-Bayes log-count ratio of each feature (column of the binary matrix `X`) for y == 1."""
    y = np.asarray(y)
    if set(np.unique(y)) != {0, 1}:
        raise ValueError(f"NBSVM needs labels 0 and 1 with both present, got {sorted(set(np.unique(y)))}")
    if alpha <= 0:
        raise ValueError(f"alpha (the smoothing count) must be positive, got {alpha}")
    p = alpha + np.asarray(X[y == 1].sum(axis=0)).ravel()
    q = alpha + np.asarray(X[y == 0].sum(axis=0)).ravel()
    return np.log((p / p.sum()) / (q / q.sum()))


class NBSVM:
    """`NBSVM(C, alpha).fit(X, y)`, then `predict`, `predict_proba` or `score` on new matrices."""

    def __init__(self, C: float = 0.1, alpha: float = 1.0, max_iter: int = 1000):
        self.alpha = alpha
        self.model = LogisticRegression(C=C, solver="liblinear", dual=True, max_iter=max_iter, random_state=0)
        self.r = None

    def _scale(self, X):
        if self.r is None:
            raise RuntimeError("NBSVM is not fitted yet: call fit(X, y) first")
        if X.shape[1] != len(self.r):
            raise ValueError(f"X has {X.shape[1]} features but the model was fitted on {len(self.r)}")
        return sp.csr_matrix(X).multiply(self.r).tocsr()

    def fit(self, X, y):
        self.r = nb_ratio(X, y, self.alpha)
        self.model.fit(self._scale(X), np.asarray(y))
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Probability of class 1 for each row."""
        return self.model.predict_proba(self._scale(X))[:, 1]

    def predict(self, X) -> np.ndarray:
        return (self.predict_proba(X) > 0.5).astype(np.int64)

    def score(self, X, y) -> float:
        """Accuracy."""
        return float((self.predict(X) == np.asarray(y)).mean())


def nbsvm_on_texts(train_texts, train_labels, ngram_range=(1, 2), min_df: int = 1, C: float = 0.1,
                   alpha: float = 1.0):
    """(featuriser, fitted NBSVM) on binarised n-grams of raw texts (`lessonlib.bow.BagOfWords`).
    Score new texts with `model.score(bow.transform(texts, output="scipy"), labels)`."""
    bow = BagOfWords(ngram_range=ngram_range, min_df=min_df).fit(train_texts)
    model = NBSVM(C=C, alpha=alpha).fit(bow.transform(train_texts, output="scipy"), train_labels)
    return bow, model
