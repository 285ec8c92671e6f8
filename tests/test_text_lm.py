from dataclasses import replace

import pytest
import torch

from lessonlib.engine.training import with_train
from lessonlib.text import lm
from lessonlib.text.awd_lstm import AWDLSTM, AWDConfig
from lessonlib.text.saved import SavedModelError, save_encoder
from lessonlib.text.tokenize import SPECIAL_TOKENS
from lessonlib.text.vocab import Vocab


def test_lm_path_lives_in_the_data_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LESSONLIB_DATA", str(tmp_path))
    path = lm.lm_path("sample")
    assert path.parent == tmp_path / "models" and path.name.startswith("imdb_lm_sample_")


def test_lm_path_changes_with_the_recipe(tmp_path, monkeypatch):
    monkeypatch.setenv("LESSONLIB_DATA", str(tmp_path))
    before = lm.lm_path("sample")
    monkeypatch.setitem(lm.LM_PRESETS, "sample", with_train(lm.LM_PRESETS["sample"], epochs=99))
    assert lm.lm_path("sample") != before


def test_imdb_language_model_loads_an_existing_file_without_training(tmp_path, monkeypatch):
    monkeypatch.setenv("LESSONLIB_DATA", str(tmp_path))
    path = lm.lm_path("sample")
    vocab = Vocab(SPECIAL_TOKENS + ["a", "b"])
    save_encoder(path, AWDLSTM(AWDConfig(len(vocab), 4, 6, 1)), vocab)
    monkeypatch.setattr(lm, "lm_data", lambda *a, **k: pytest.fail("must not train when the file exists"))
    assert lm.trained_lm_path("sample") == path
    with pytest.raises(ValueError, match="unknown size"):
        lm.trained_lm_path("huge")


def test_imdb_language_model_names_a_broken_file_instead_of_training_over_it(tmp_path, monkeypatch):
    monkeypatch.setenv("LESSONLIB_DATA", str(tmp_path))
    path = lm.lm_path("sample")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x")
    monkeypatch.setattr(lm, "lm_data", lambda *a, **k: pytest.fail("must not train over a broken file"))
    with pytest.raises(SavedModelError, match=f"{path.name} is not a readable saved LM encoder.*04"):
        lm.trained_lm_path("sample")


def test_lm_texts_hold_out_valid_and_never_read_test(monkeypatch):
    import pandas as pd

    seen = []

    def fake_reviews(size, split):
        seen.append(split)
        texts = [f"{split} {i}" for i in range(10)]
        if split == "test":  # two test reviews whose texts the archive also has among train and unsup
            texts[:2] = ["train 3", "unsup 7"]
        return pd.DataFrame({"text": texts})

    monkeypatch.setattr("lessonlib.text.lm.imdb_reviews", fake_reviews)
    train, valid = lm.lm_texts("sample", valid_fraction=0.1)
    assert sorted(seen) == ["test", "train", "unsup"]  # test texts are read only to be dropped
    assert len(train) == 16 and len(valid) == 2 and not set(train) & set(valid)
    assert not {"train 3", "unsup 7"} & set(train + valid)
    assert not any(t.startswith("test") for t in train + valid)
    assert lm.lm_texts("sample") == (train, valid)  # seeded
    assert len(lm.lm_texts("sample", train_reviews=5, valid_reviews=3)[0]) == 5


def test_head_keeps_the_vocabulary_and_cuts_train_and_valid():
    vocab = Vocab.build([["a", "b"]], min_freq=1)
    data = lm.LMData([["a"], ["b"], ["a"]], [["b"], ["a"]], vocab, [[1], [2], [1]], [[2], [1]])
    short = data.head(2)
    assert short.vocab is vocab and short.train_ids == [[1], [2]] and short.valid_ids == [[2], [1]]
    shorter = data.head(1, n_valid=1)
    assert shorter.train_tokens == [["a"]] and shorter.valid_tokens == [["b"]] and shorter.valid_ids == [[2]]


def test_without_test_texts():
    assert lm.without_test_texts(["a", "b", "c", "b"], ["b", "z"]) == [0, 2]


def test_build_lm_kinds():
    cfg = replace(lm.LM_PRESETS["sample"], emb_size=4, n_hid=6, n_layers=1, adaptive_cutoffs=None)
    assert lm.build_lm("plain", 20, cfg).encoder.rnns[0].weight_p == 0
    assert lm.build_lm("awd", 20, cfg).encoder.rnns[0].weight_p > 0
    with pytest.raises(ValueError, match="'awd' or 'plain'"):
        lm.build_lm("gru", 20, cfg)


def test_word_vectors_follow_the_seed():
    docs = [["good", "film", "great", "film", "bad", "plot", "awful", "plot"]] * 30
    vocab = Vocab.build(docs, min_freq=1)
    data = lm.LMData(docs, docs[:1], vocab, [vocab.numericalize(d) for d in docs], [])
    cfg = replace(lm.LM_PRESETS["sample"], emb_size=8, w2v_epochs=2)
    first, again, other = (lm.word_vectors(data, cfg, s).weights for s in (1, 1, 2))
    assert torch.equal(first, again) and not torch.equal(first, other)
