"""benchmarks/imdb_gpu_check.py: the exported ids load back to exactly what lm_data and
imdb_classifier_data would build (same LM split, vocabulary, ids, labels), and imdb_full's TrainTimer
(which it uses) counts right."""

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "imdb_gpu_check.py"


@pytest.fixture
def check(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # it imports its sibling imdb_full, as when run
    spec = importlib.util.spec_from_file_location("imdb_gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_reviews(size, split):
    words = ["good", "bad", "film", "Great", "PLOT", "the", "a", "rare" + split]
    rng = np.random.default_rng(len(split))
    texts = [" ".join(rng.choice(words, rng.integers(1, 12))) + f" {split}{i}" for i in range(30)]
    labels = rng.integers(0, 2, 30) if split != "unsup" else np.full(30, -1)
    return pd.DataFrame({"text": texts, "label": labels})


def test_export_then_load_gives_the_notebooks_split_vocab_ids_and_labels(check, tmp_path, monkeypatch):
    from lessonlib.text import lm
    from lessonlib.text.tokenize import tokenize_texts
    from lessonlib.text.vocab import Vocab

    monkeypatch.setenv("LESSONLIB_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr("lessonlib.data.imdb_reviews", fake_reviews)  # what the export reads
    monkeypatch.setattr("lessonlib.text.lm.imdb_reviews", fake_reviews)  # what lm_texts reads
    monkeypatch.setitem(lm.LM_PRESETS, "full", replace(lm.LM_PRESETS["full"], min_freq=2))
    check.export(tmp_path / "ids.npz", "sample")
    vocab, parts, lm_train, lm_valid = check.load(tmp_path / "ids.npz")

    train_texts, valid_texts = lm.lm_texts("sample")
    expected_vocab = Vocab.build(tokenize_texts(train_texts, n_workers=1), min_freq=2)
    assert vocab.itos == expected_vocab.itos and "good" in vocab and "train0" not in vocab  # once: dropped
    texts = list(fake_reviews("", "train")["text"]) + list(fake_reviews("", "unsup")["text"])
    assert [texts[i] for i in lm_train] == train_texts and [texts[i] for i in lm_valid] == valid_texts
    for split in ("train", "unsup", "test"):
        df = fake_reviews("", split)
        ids, labels = parts[split]
        want = [vocab.numericalize(t) for t in tokenize_texts(list(df["text"]), n_workers=1)]
        assert len(ids) == len(want) and all(np.array_equal(a, b) for a, b in zip(ids, want, strict=True))
        assert np.array_equal(labels, df["label"].to_numpy())


def test_first_tokens_and_the_timer_skips_warm_up_batches(check):
    docs = [np.arange(n) for n in (5, 5, 5)]
    assert len(check.first_tokens(docs, 6)) == 2 and len(check.first_tokens(docs, 100)) == 3
    timer = check.TrainTimer(lambda b: len(b), warmup=1)

    class Learn:
        training = True

    for epoch in range(2):
        timer.before_epoch(Learn)
        for Learn.batch in ([1], [1, 2], [1, 2, 3]):
            timer.before_batch(Learn)
        timer.before_validate(Learn) if epoch == 0 else timer.after_fit(Learn)
    assert timer.tokens == 5 + 6 and timer.seconds > 0  # only the run's first batch is warm-up
    assert timer.start is None and timer.rate == timer.tokens / timer.seconds
