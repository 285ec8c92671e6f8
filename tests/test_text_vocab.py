import numpy as np
import pytest

from lessonlib.text.tokenize import PAD, SPECIAL_TOKENS, UNK, tokenize
from lessonlib.text.vocab import Vocab


def docs():
    return [["the", "cat", "the", "dog"], ["the", "cat", "rare"], ["cat"]]


def test_build_min_freq_max_size_and_special_first():
    v = Vocab.build(docs(), min_freq=2)
    assert v.itos[: len(SPECIAL_TOKENS)] == SPECIAL_TOKENS
    assert v.itos[len(SPECIAL_TOKENS) :] == ["the", "cat"]  # most frequent first, rare ones dropped
    assert v.numericalize(["cat", "rare"]).tolist() == [v.stoi["cat"], v.stoi[UNK]]
    assert v.numericalize(["cat"]).dtype == np.int32
    assert v.pad_id == v.stoi[PAD]
    small = Vocab.build(docs(), min_freq=1, max_size=len(SPECIAL_TOKENS) + 1)
    assert small.itos[-1] == "the" and len(small) == len(SPECIAL_TOKENS) + 1


def test_textify_maps_ids_back_with_unknowns_as_xxunk():
    v = Vocab.build(docs(), min_freq=2)
    assert v.textify(v.numericalize(["the", "dog"])) == ["the", UNK]


def test_bad_vocabularies():
    with pytest.raises(ValueError, match="special tokens"):
        Vocab(["a", "b"])
    with pytest.raises(ValueError, match="twice"):
        Vocab(SPECIAL_TOKENS + ["a", "a"])
    with pytest.raises(ValueError, match="min_freq"):
        Vocab.build(docs(), min_freq=0)


def test_a_text_of_unknown_words_is_xxbos_then_xxunk():
    ids = Vocab(SPECIAL_TOKENS + ["the"]).numericalize(tokenize("zzyzx qwertyuiop"))
    assert Vocab(SPECIAL_TOKENS + ["the"]).textify(ids) == ["xxbos", "xxunk", "xxunk"]
