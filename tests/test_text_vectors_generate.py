import pytest
import torch

from lessonlib.text.awd_lstm import AWDConfig, awd_lstm_lm
from lessonlib.text.generate import generate
from lessonlib.text.tokenize import SPECIAL_TOKENS
from lessonlib.text.vectors import init_embedding, load_vectors
from lessonlib.text.vocab import Vocab


def vocab():
    counts = {"the": 6, "movie": 3, "great": 1, "zzz": 2}
    return Vocab(SPECIAL_TOKENS + list(counts), counts)


def test_load_vectors_glove_and_word2vec(tmp_path):
    glove = tmp_path / "glove.txt"
    glove.write_text("the 1 2 3\nmovie 4 5 6\nother 9 9 9\n")
    vec = load_vectors(glove, vocab())
    v = vocab()
    assert vec.weights[v.stoi["movie"]].tolist() == [4, 5, 6]
    assert vec.found.sum() == 2 and vec.coverage == pytest.approx(2 / len(v))
    assert vec.weights[v.stoi["great"]].tolist() == [2.5, 3.5, 4.5]  # mean of the found rows
    assert vec.token_coverage(v) == pytest.approx(9 / 12)
    w2v = tmp_path / "w2v.txt"
    w2v.write_text("2 3\nthe 1 2 3\ngreat 0 0 1\n")
    assert load_vectors(w2v, v).found.sum() == 2


def test_bad_vectors_files(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("the 1 2 3\nmovie 4 5\n")
    with pytest.raises(ValueError, match="bad.txt:2"):
        load_vectors(bad, vocab())
    with pytest.raises(FileNotFoundError):
        load_vectors(tmp_path / "missing.txt", vocab())


def test_init_embedding_checks_shape(tmp_path):
    f = tmp_path / "v.txt"
    f.write_text("the 1 2 3 4\n")
    vec = load_vectors(f, vocab())
    lm = awd_lstm_lm(AWDConfig(len(vocab()), 4, 8, 1))
    init_embedding(lm, vec)
    assert lm.encoder.embedding.weight[vocab().stoi["the"]].tolist() == [1, 2, 3, 4]
    assert lm.decoder.linear.weight[vocab().stoi["the"]].tolist() == [1, 2, 3, 4]  # tied
    with pytest.raises(ValueError, match="emb_size=4"):
        init_embedding(awd_lstm_lm(AWDConfig(len(vocab()), 6, 8, 1)), vec)


def test_generate_is_seeded_and_respects_top_k():
    torch.manual_seed(0)
    v = vocab()
    lm = awd_lstm_lm(AWDConfig(len(v), 4, 8, 1))
    a = generate(lm, v, "The movie", n_tokens=10, temperature=1.0, seed=1)
    assert a == generate(lm, v, "The movie", n_tokens=10, temperature=1.0, seed=1)
    assert a.startswith("The movie")
    greedy = generate(lm, v, "the", n_tokens=5, temperature=0)
    assert greedy == generate(lm, v, "the", n_tokens=5, top_k=1, seed=3)  # top-1 sampling is greedy
    assert "xxunk" not in generate(lm, v, "the", n_tokens=30, seed=2)
    with pytest.raises(ValueError, match="top_k"):
        generate(lm, v, "the", top_k=0)


def synthetic_corpus(n_docs=300, seed=0):
    """Two families of words that never share a context: 'good' words next to 'fun', 'bad' ones to 'dull'."""
    import random

    rng = random.Random(seed)
    families = [(["great", "superb", "lovely"], "fun"), (["awful", "boring", "dreadful"], "dull")]
    return [[w for _ in range(4) for w in (rng.choice(words), context)]
            for words, context in families for _ in range(n_docs)]


def test_word2vec_puts_words_of_the_same_contexts_together():
    from lessonlib.text.vectors import train_word2vec

    docs = synthetic_corpus()
    vocab = Vocab.build(docs, min_freq=1)
    vecs = train_word2vec(docs, vocab, dim=8, epochs=20, workers=1)
    assert vecs.weights.shape == (len(vocab), 8) and vecs.coverage < 1  # special tokens are not trained
    w = torch.nn.functional.normalize(vecs.weights, dim=1)
    sim = lambda a, b: float(w[vocab.stoi[a]] @ w[vocab.stoi[b]])  # noqa: E731
    assert sim("great", "superb") > sim("great", "boring") + 0.2
    assert sim("awful", "dreadful") > sim("awful", "lovely") + 0.2
    again = train_word2vec(docs, vocab, dim=8, epochs=20, workers=1)
    assert torch.equal(vecs.weights, again.weights)  # one worker: the same vectors every run
