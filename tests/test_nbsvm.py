import numpy as np
import pytest
import scipy.sparse as sp

from lessonlib.text.nbsvm import NBSVM, nb_ratio, nbsvm_on_texts


def separable(n=40, seed=0):
    """Binary features: 0-1 only in positives, 2-3 only in negatives, 4-9 noise in both."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = (rng.random((n, 10)) < 0.3).astype(float)
    X[:, :4] = 0
    X[y == 1, rng.integers(0, 2, size=(y == 1).sum())] = 1
    X[y == 0, rng.integers(2, 4, size=(y == 0).sum())] = 1
    return sp.csr_matrix(X), y


def test_nb_ratio_signs_follow_the_class_a_feature_appears_in():
    X, y = separable()
    r = nb_ratio(X, y)
    assert (r[:2] > 0).all() and (r[2:4] < 0).all()
    assert np.abs(r[4:]).max() < np.abs(r[:4]).min()


def test_nb_ratio_matches_the_formula():
    X = sp.csr_matrix(np.array([[1, 0], [1, 1], [0, 1]]))
    y = np.array([1, 1, 0])
    p, q = np.array([3, 2]), np.array([1, 2])  # alpha 1 + counts
    assert np.allclose(nb_ratio(X, y), np.log((p / 5) / (q / 3)))


def test_nbsvm_separates_a_separable_corpus_and_generalises():
    X, y = separable(seed=0)
    model = NBSVM(C=1.0).fit(X, y)
    assert model.score(X, y) == 1.0
    X_new, y_new = separable(seed=1)
    assert model.score(X_new, y_new) == 1.0
    proba = model.predict_proba(X_new)
    assert ((proba > 0.5) == (y_new == 1)).all() and ((0 < proba) & (proba < 1)).all()


def test_nbsvm_bad_input_is_explained():
    X, y = separable()
    with pytest.raises(RuntimeError, match="fit"):
        NBSVM().predict(X)
    with pytest.raises(ValueError, match="both present"):
        NBSVM().fit(X, np.ones(X.shape[0], dtype=int))
    model = NBSVM().fit(X, y)
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :5])


def test_nbsvm_on_texts_learns_a_tiny_separable_corpus():
    train = ["a good film", "good acting, good story", "simply good", "not good at all", "it was not good",
             "the plot was not good", "good fun", "really good"]
    labels = [1, 1, 1, 0, 0, 0, 1, 1]
    bow, model = nbsvm_on_texts(train, labels, ngram_range=(1, 2), C=10.0)
    assert "not good" in bow.vocab  # bigrams are features
    assert model.score(bow.transform(train, output="scipy"), labels) == 1.0
    test = ["good music", "the music was not good", "good, good, good", "honestly not good"]
    assert model.predict(bow.transform(test, output="scipy")).tolist() == [1, 0, 1, 0]
