import pytest
import torch

from lessonlib.text.awd_lstm import AWDConfig, awd_lstm_lm
from lessonlib.text.generate import generate


def test_generate_is_seeded_and_respects_top_k(vocab):
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
