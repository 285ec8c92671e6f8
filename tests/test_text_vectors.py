import pytest
import torch

from lessonlib.text.awd_lstm import AWDConfig, awd_lstm_lm
from lessonlib.text.vectors import PretrainedVectors, init_embedding
from lessonlib.text.vocab import Vocab


def test_init_embedding_copies_the_vectors_into_the_tied_embedding(vocab):
    weights = torch.zeros(len(vocab()), 4)
    weights[vocab().stoi["the"]] = torch.tensor([1.0, 2, 3, 4])
    vec = PretrainedVectors(weights, weights.abs().sum(1) > 0)
    lm = awd_lstm_lm(AWDConfig(len(vocab()), 4, 8, 1))
    init_embedding(lm, vec)
    assert lm.encoder.embedding.weight[vocab().stoi["the"]].tolist() == [1, 2, 3, 4]
    assert lm.decoder.linear.weight[vocab().stoi["the"]].tolist() == [1, 2, 3, 4]  # tied
    with pytest.raises(ValueError, match="emb_size=4"):
        init_embedding(awd_lstm_lm(AWDConfig(len(vocab()), 6, 8, 1)), vec)


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
