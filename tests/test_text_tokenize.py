import numpy as np
import pytest

from lessonlib.text import tokenize as tk
from lessonlib.text.tokenize import BOS, MAJ, REP, UP, WREP, clean_text, detokenize, tokenize, tokenize_texts


def test_special_tokens_and_rules():
    toks = tokenize("THIS film was sooooo GOOD.<br /><br />Fun fun fun FUN! The end")
    assert toks[0] == BOS
    assert toks[1:3] == [UP, "this"]
    assert toks[5:9] == ["s", REP, "5", "o"]  # a character repeated 4+ times
    assert toks[9:11] == [UP, "good"]
    assert "\n" in toks  # <br /> became a line break
    i = toks.index(WREP)
    assert toks[i : i + 4] == [WREP, "4", MAJ, "fun"]  # a word repeated 4+ times, any case
    assert toks[-3:] == [MAJ, "the", "end"]
    assert all(t == t.lower() for t in toks)


def test_clean_text_drops_control_characters_and_collapses_spaces():
    assert clean_text("a\x08b   c\x10 <BR/>d") == "a b c \nd"
    with pytest.raises(TypeError, match="decode bytes"):
        clean_text(b"bytes")


def test_three_repeats_are_left_alone():
    toks = tokenize("no no no way")
    assert WREP not in toks and toks.count("no") == 3


def test_detokenize_round_trip_is_readable():
    text = "I didn't like it. The END, really!"
    assert detokenize(tokenize(text)) == text


def test_parallel_equals_serial_and_cache_is_keyed(tmp_path, monkeypatch):
    texts = [f"Review number {i}: it was GREAT!!!! <br />Really." for i in range(40)]
    serial = tokenize_texts(texts, n_workers=1, cache=False, show_progress=False)
    parallel = tokenize_texts(texts, n_workers=2, cache=tmp_path, show_progress=False)
    assert parallel == serial
    assert len(list(tmp_path.glob("*.npz"))) == 1
    calls = []
    monkeypatch.setattr(tk, "in_parts", lambda *a, **k: calls.append(1) or [])
    assert tokenize_texts(texts, n_workers=2, cache=tmp_path, show_progress=False) == serial  # from disk
    assert calls == []
    tokenize_texts(texts[:-1] + ["changed"], n_workers=2, cache=tmp_path, show_progress=False)
    assert calls == [1]  # a changed input is tokenized again, never served stale
    monkeypatch.setattr(tk, "TOKENIZER_VERSION", tk.TOKENIZER_VERSION + 1)
    tokenize_texts(texts, n_workers=2, cache=tmp_path, show_progress=False)
    assert calls == [1, 1]  # so is a changed rule version


def test_save_load_tokens_keeps_empty_docs(tmp_path):
    docs = [["a", "b", "\n"], [], ["ü", "a"]]
    tk.save_tokens(tmp_path / "t.npz", docs)
    assert tk.load_tokens(tmp_path / "t.npz") == docs
    assert not list(tmp_path.glob("*.tmp"))


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="item 1 is bytes"):
        tokenize_texts(["ok", b"bad"], cache=False)


def test_cache_key_depends_on_text_boundaries():
    assert tk.cache_key(["ab", "c"]) != tk.cache_key(["a", "bc"])
    assert tk.cache_key(["x"]) == tk.cache_key(["x"])
    assert np.all([len(tk.cache_key([s])) == 32 for s in ["", "a"]])
