import numpy as np
import pytest
import scipy.sparse as sp
import torch

from lessonlib.bow import BagOfWords, ngrams, rows_loader, to_tensor, words

TEXTS = ["The movie was good, good fun.", "A bad movie.<br />Bad acting", "good acting, bad plot"]


def test_tokenize_lowercases_and_drops_html_breaks():
    assert words("Great<br />FILM, don't miss") == ["great", "film", "don't", "miss"]


def test_ngrams_are_distinct_and_joined_by_spaces():
    assert ngrams(["a", "b", "a", "b"], (1, 2)) == {"a", "b", "a b", "b a"}
    assert ngrams(["a", "b"], (2, 2)) == {"a b"}


def test_fit_orders_by_document_count_then_alphabet():
    bow = BagOfWords().fit(TEXTS)
    # movie, good, bad, acting each occur in 2 texts; ties are alphabetical
    assert bow.features[:4] == ["acting", "bad", "good", "movie"]
    assert list(bow.doc_freq[:4]) == [2, 2, 2, 2]
    assert bow.vocab["acting"] == 0


def test_features_are_binary_and_match_the_vocabulary():
    bow = BagOfWords().fit(TEXTS)
    X = bow.transform(TEXTS, output="dense")
    assert X.dtype == torch.float32 and X.shape == (3, bow.n_features)
    assert set(X.unique().tolist()) == {0.0, 1.0}  # "good" twice in text 0 still gives 1
    for i, text in enumerate(TEXTS):
        present = {bow.features[j] for j in X[i].nonzero().flatten().tolist()}
        assert present == set(words(text))


def test_bigrams_min_df_and_max_features():
    bow = BagOfWords(ngram_range=(1, 2), min_df=2).fit(TEXTS)
    assert set(bow.features) == {"acting", "bad", "good", "movie"}  # no bigram is in 2 texts
    bow = BagOfWords(ngram_range=(2, 2)).fit(TEXTS)
    assert {"a bad", "bad movie", "movie bad"} <= set(bow.features) and "good fun" in bow.features
    assert all(" " in f for f in bow.features)
    assert BagOfWords(max_features=3).fit(TEXTS).features == ["acting", "bad", "good"]


def test_unseen_words_are_ignored():
    bow = BagOfWords().fit(TEXTS)
    X = bow.transform(["good zebra"], output="dense")
    assert X.sum().item() == 1 and X[0, bow.vocab["good"]] == 1


def test_the_three_outputs_agree():
    bow = BagOfWords(ngram_range=(1, 2)).fit(TEXTS)
    dense = bow.transform(TEXTS, output="dense")
    sparse = bow.transform(TEXTS)
    scipy_X = bow.transform(TEXTS, output="scipy")
    assert sparse.layout == torch.sparse_csr and sparse.dtype == torch.float32
    assert sp.issparse(scipy_X) and scipy_X.dtype == np.float32
    assert torch.equal(sparse.to_dense(), dense)
    assert np.array_equal(scipy_X.toarray(), dense.numpy())
    assert torch.equal(to_tensor(scipy_X, sparse=False), dense)


@pytest.mark.parametrize("kwargs, match", [
    ({"ngram_range": (2, 1)}, "ngram_range"), ({"ngram_range": (0, 1)}, "ngram_range"),
    ({"min_df": 0}, "min_df"), ({"max_features": 0}, "max_features"),
])
def test_bad_settings_are_explained(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BagOfWords(**kwargs)


def test_bad_input_is_explained():
    with pytest.raises(RuntimeError, match="fit"):
        BagOfWords().transform(TEXTS)
    with pytest.raises(TypeError, match="list of texts"):
        BagOfWords().fit("one review")
    with pytest.raises(TypeError, match="str"):
        BagOfWords().fit(["ok", None])
    with pytest.raises(ValueError, match="empty"):
        BagOfWords(min_df=5).fit(TEXTS)
    with pytest.raises(ValueError, match="output"):
        BagOfWords().fit(TEXTS).transform(TEXTS, output="numpy")


@pytest.mark.parametrize("output", ["sparse", "dense", "scipy"])
def test_rows_loader_gives_every_row_once_with_its_label(output):
    texts = [f"word{i} common" for i in range(10)]
    bow = BagOfWords().fit(texts)
    X, y = bow.transform(texts, output=output), torch.arange(10)
    dense = bow.transform(texts, output="dense")
    seen = []
    for xb, yb in rows_loader(X, y, batch_size=3, shuffle=True, seed=1):
        xb = xb.to_dense() if xb.layout != torch.strided else xb
        assert torch.equal(xb, dense[yb])  # row i of the batch is row y[i] of X
        seen += yb.tolist()
    assert sorted(seen) == list(range(10)) and seen != list(range(10))


def test_rows_loader_can_densify_sparse_batches():
    X = torch.eye(6)
    for xb, yb in rows_loader(X.to_sparse_csr(), torch.arange(6), batch_size=4, dense_batches=True):
        assert xb.layout == torch.strided and torch.equal(xb, X[yb])


def test_rows_loader_shuffles_reproducibly():
    X, y = torch.eye(20), torch.arange(20)
    order = lambda seed: [b[1].tolist() for b in rows_loader(X, y, 5, shuffle=True, seed=seed)]
    assert order(3) == order(3)
    assert order(3) != order(4)
    assert len(rows_loader(X, y)) == 1  # batch_size=None: one full batch


def test_rows_loader_checks_its_input():
    with pytest.raises(ValueError, match="rows"):
        rows_loader(torch.eye(3), torch.arange(4))
    with pytest.raises(TypeError, match="tensor"):
        rows_loader([[1.0]], [0])
    with pytest.raises(ValueError, match="batch_size"):
        rows_loader(torch.eye(3), torch.arange(3), batch_size=0)
