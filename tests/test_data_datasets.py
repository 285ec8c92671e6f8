"""The IMDB and Rossmann datasets: sample rules on tiny data, `imdb_reviews`, and, where the real
archives are in a mirror (CI), samples derived from the full archives equal the sample archives."""

import json
import os
import tarfile
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from lessonlib.data import datasets, read_review
from lessonlib.data.cache import CACHE_ENV, MARKER, MIRROR_ENV, DataError, mirror_dirs
from lessonlib.data.datasets import (
    IMDB,
    ROSSMANN,
    ROSSMANN_TABLES,
    imdb,
    imdb_reviews,
    imdb_sample_files,
    rossmann,
    rossmann_sample_files,
)


def as_files(files: dict[str, bytes]):
    return ((name, lambda data=data: data) for name, data in files.items())


# --- IMDB ---------------------------------------------------------------------------------------------

def toy_imdb_files(n: int = 60) -> dict[str, bytes]:
    """An aclImdb tree with n reviews per labelled folder, 2n unsup, and the extra files of the original."""
    files = {"aclImdb/README": b"readme\n", "aclImdb/imdb.vocab": b"the\na\n", "aclImdb/imdbEr.txt": b"0.1\n",
             "aclImdb/train/labeledBow.feat": b"feat", "aclImdb/train/urls_pos.txt": b"http://x\n"}
    for split, label, count, ratings in [("train", "pos", n, (7, 10)), ("train", "neg", n, (1, 4)),
                                         ("test", "pos", n, (8, 9)), ("test", "neg", n, (2, 3)),
                                         ("train", "unsup", 2 * n, (0, 0))]:
        for i in range(count):
            rating = ratings[i % 2]
            files[f"aclImdb/{split}/{label}/{i}_{rating}.txt"] = f"{split} {label} review {i}".encode()
    return files


def test_imdb_sample_rule_keeps_ids_that_are_multiples_of_25_and_the_vocabulary():
    files = toy_imdb_files()
    sample = dict(imdb_sample_files(as_files(files)))
    expected = {name for name in files if name.endswith(".txt") and "/" in name[8:]
                and name.rsplit("/", 1)[1].split("_")[0].isdigit()
                and int(name.rsplit("/", 1)[1].split("_")[0]) % 25 == 0}
    assert set(sample) == expected | {"aclImdb/README", "aclImdb/imdb.vocab"}
    assert all(sample[name] == files[name] for name in sample)
    assert "aclImdb/train/unsup/100_0.txt" in sample and "aclImdb/train/pos/26_10.txt" not in sample


@pytest.fixture
def toy_imdb(dirs, monkeypatch, make_archive):
    """IMDB served from a tiny full archive (same name as the mirror's, checksums switched off)."""
    _, mirror = dirs
    make_archive(mirror / "imdb" / "aclImdb.tar.gz", toy_imdb_files())
    archives = {size: tuple(replace(a, size=None, sha256=None, md5=None) for a in IMDB.archives[size])
                for size in IMDB.archives}
    monkeypatch.setattr(datasets, "IMDB", replace(IMDB, archives=archives))


def test_imdb_returns_the_aclimdb_folder(toy_imdb, dirs):
    cache, _ = dirs
    assert imdb("full") == cache / "imdb-full" / "aclImdb"
    assert imdb("sample") == cache / "imdb-sample" / "aclImdb"
    assert sorted(p.name for p in imdb("sample").iterdir()) == ["README", "imdb.vocab", "test", "train"]


@pytest.mark.parametrize("split", ["train", "test", "unsup"])
def test_imdb_reviews_columns_labels_and_order(toy_imdb, split):
    reviews = imdb_reviews("full", split)
    assert list(reviews.columns) == ["id", "rating", "label", "text"]
    assert reviews.equals(reviews.sort_values(["label", "id"], ignore_index=True))
    labels = {"train": [0, 1], "test": [0, 1], "unsup": [-1]}[split]
    assert sorted(reviews.label.unique()) == labels
    for row in reviews.itertuples():
        folder = {0: "neg", 1: "pos", -1: "unsup"}[row.label]
        path = imdb("full") / ("train" if split == "unsup" else split) / folder / f"{row.id}_{row.rating}.txt"
        assert path.read_text() == row.text
    folders = ["unsup"] if split == "unsup" else ["neg", "pos"]
    parent = imdb("full") / ("train" if split == "unsup" else split)
    assert len(reviews) == sum(len(list((parent / folder).glob("*.txt"))) for folder in folders)
    assert (reviews.rating[reviews.label == 1] >= 7).all() and (reviews.rating[reviews.label == 0] <= 4).all()


def test_imdb_reviews_sample_is_every_25th_review(toy_imdb):
    assert (imdb_reviews("sample", "test").id % 25 == 0).all()
    assert imdb_reviews("sample", "test").id.tolist() == [0, 25, 50] * 2


def test_imdb_reviews_rejects_a_bad_split(toy_imdb):
    with pytest.raises(ValueError, match="split must be one of"):
        imdb_reviews("sample", "valid")


# --- Rossmann -----------------------------------------------------------------------------------------

def toy_rossmann_files() -> dict[str, bytes]:
    """Rossmann's 8 CSVs in miniature: stores 1..6, of which 2, 3, 5 and 6 are in test.csv."""
    train = ['"Store","DayOfWeek","Date","Sales"'] + [f'{s},5,2015-07-{d:02},{100 * s + d}'
                                                      for d in (31, 30) for s in range(1, 7)]
    test_rows = [(s, d) for d in (1, 2) for s in (6, 2, 5, 3)]
    test = ['"Id","Store","Date","Open"'] + [f"{i},{s},2015-08-{d:02},1"
                                             for i, (s, d) in enumerate(test_rows, 1)]
    files = {
        "train.csv": train,
        "test.csv": test,
        "store.csv": ['"Store","StoreType","PromoInterval"'] + [f'{s},"a","Jan,Apr"' for s in range(1, 7)],
        "store_states.csv": ["Store,State"] + [f"{s},HE" for s in range(1, 7)],
        "sample_submission.csv": ['"Id","Sales"'] + [f"{i},0" for i in range(1, len(test_rows) + 1)],
        "state_names.csv": ["StateName,State", "Hessen,HE"],
        "googletrend.csv": ["file,week,trend", "Rossmann_DE,2012-12-02 - 2012-12-08,96", ""],
        "weather.csv": ["file,Date", "Hessen,2013-01-01", ""],
    }
    return {name: ("\n".join(lines) + "\n").encode() for name, lines in files.items()}


def test_rossmann_sample_rule_keeps_the_lowest_test_stores_as_text(monkeypatch):
    monkeypatch.setattr(datasets, "ROSSMANN_SAMPLE_STORES", 2)
    files = toy_rossmann_files()
    sample = dict(rossmann_sample_files(as_files(files)))
    assert sorted(sample) == sorted(files)
    kept = {2, 3}  # the two lowest-numbered stores that appear in test.csv (1 does not)

    def lines(name):
        return files[name].decode().splitlines()

    for name, column in [("train.csv", 0), ("test.csv", 1), ("store.csv", 0), ("store_states.csv", 0)]:
        rows = [line for line in lines(name)[1:] if int(line.split(",")[column]) in kept]
        expected = [lines(name)[0]] + rows
        assert sample[name].decode() == "\n".join(expected) + "\n"
    test_ids = [line.split(",")[0] for line in sample["test.csv"].decode().splitlines()[1:]]
    submission = sample["sample_submission.csv"].decode().splitlines()
    assert submission == ['"Id","Sales"'] + [f"{i},0" for i in test_ids]
    for name in ("state_names.csv", "googletrend.csv", "weather.csv"):
        assert sample[name] == files[name]


def test_rossmann_returns_the_folder_of_the_8_csvs(dirs, make_archive):
    cache, mirror = dirs
    make_archive(mirror / "rossmann" / "rossmann.tgz", toy_rossmann_files())
    assert rossmann("full") == cache / "rossmann-full"
    csvs = sorted(p.name for p in rossmann("full").glob("*.csv"))
    assert csvs == sorted(f"{t}.csv" for t in ROSSMANN_TABLES)
    assert pd.read_csv(rossmann("sample") / "train.csv").Store.nunique() == 4  # all stores in test.csv


def test_rossmann_archive_without_the_8_csvs_is_refused(dirs, make_archive):
    _, mirror = dirs
    files = toy_rossmann_files()
    del files["weather.csv"]
    make_archive(mirror / "rossmann.tgz", files)
    with pytest.raises(DataError, match="lacks weather.csv"):
        rossmann("full")


# --- the real archives (CI sets LESSONLIB_DATA_MIRROR) --------------------------------------------------

def find_real(dataset, size) -> Path | None:
    for folder in [f for m in mirror_dirs() for f in (m, m / dataset.name)]:
        for archive in dataset.archives[size]:
            if (folder / archive.name).is_file():
                return folder / archive.name
    return None


REAL = {(d.name, size): find_real(d, size) for d in (IMDB, ROSSMANN) for size in ("full", "sample")}
needs_mirror = pytest.mark.skipif(
    None in REAL.values(), reason=f"{MIRROR_ENV} does not point at the real IMDB and Rossmann archives")


@pytest.fixture(scope="session")
def real(tmp_path_factory):
    """Both datasets in fresh caches: samples derived from the full archives, from the full extraction,
    and extracted from the sample archives (the full IMDB extraction is done once per session)."""
    root = tmp_path_factory.mktemp("real")
    full_only, sample_only = root / "full-only", root / "sample-only"
    for (_, size), path in REAL.items():
        folder = full_only if size == "full" else sample_only
        folder.mkdir(exist_ok=True)
        (folder / path.name).symlink_to(path)
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LESSONLIB_PROGRESS", "0")
        mp.setenv(MIRROR_ENV, str(sample_only))
        mp.setenv(CACHE_ENV, str(root / "from-sample-archives"))
        out["archived"] = {"imdb": imdb("sample"), "rossmann": rossmann("sample")}
        mp.setenv(MIRROR_ENV, str(full_only))
        mp.setenv(CACHE_ENV, str(root / "from-full-archives"))
        out["derived"] = {"imdb": imdb("sample"), "rossmann": rossmann("sample")}
        out["full"] = {"imdb": imdb("full"), "rossmann": rossmann("full")}
        os.rename(root / "from-full-archives" / "imdb-sample", root / "imdb-sample-before")
        os.rename(root / "from-full-archives" / "rossmann-sample", root / "rossmann-sample-before")
        mp.setenv(MIRROR_ENV, "")  # only the full extractions are left to derive from
        out["derived from extraction"] = {"imdb": imdb("sample"), "rossmann": rossmann("sample")}
        out["reviews"] = {split: imdb_reviews("sample", split) for split in ("train", "test", "unsup")}
    return out


@needs_mirror
@pytest.mark.parametrize("route", ["derived", "derived from extraction"])
@pytest.mark.parametrize("name", ["imdb", "rossmann"])
def test_real_sample_derived_from_the_full_data_equals_the_sample_archive(real, route, name, tree):
    derived, archived = tree(real[route][name]), tree(real["archived"][name])
    assert sorted(derived) == sorted(archived)
    different = [path for path in archived if derived[path] != archived[path]]
    assert not different, f"{len(different)} files differ, e.g. {different[:3]}"


@needs_mirror
def test_real_full_imdb_has_the_official_layout(real):
    folder = real["full"]["imdb"]
    counts = {f"{split}/{label}": len(list((folder / split / label).glob("*.txt")))
              for split, labels in datasets.IMDB_SPLITS.items() if split != "unsup" for label in labels}
    counts["train/unsup"] = len(list((folder / "train" / "unsup").glob("*.txt")))
    assert counts == {"train/neg": 12_500, "train/pos": 12_500, "test/neg": 12_500, "test/pos": 12_500,
                      "train/unsup": 50_000}


@needs_mirror
def test_real_samples_have_the_documented_sizes(real):
    reviews = real["reviews"]
    for split in ("train", "test"):
        assert reviews[split].label.value_counts().to_dict() == {0: 500, 1: 500}
    assert len(reviews["unsup"]) == 2000 and (reviews["unsup"].label == -1).all()
    train = pd.read_csv(real["archived"]["rossmann"] / "train.csv", low_memory=False)
    test = pd.read_csv(real["full"]["rossmann"] / "test.csv")
    assert sorted(train.Store.unique()) == sorted(test.Store.unique())[:50]
    with tarfile.open(REAL[("rossmann", "full")]) as tar:
        assert sorted(m.name for m in tar if m.isfile()) == sorted(f"{t}.csv" for t in ROSSMANN_TABLES)


def test_markers_name_the_archive_they_came_from(toy_imdb, dirs):
    cache, mirror = dirs
    imdb("sample")
    marker = json.loads((cache / "imdb-sample" / MARKER).read_text())
    assert marker["derived"] is True and marker["source"]["path"] == str(mirror / "imdb" / "aclImdb.tar.gz")


def test_imdb_reviews_names_a_file_that_is_not_utf8(tmp_path, monkeypatch):
    from lessonlib.data import datasets

    folder = tmp_path / "aclImdb" / "train" / "pos"
    folder.mkdir(parents=True)
    (folder / "0_9.txt").write_bytes(b"fine \xff\xfe bytes")
    monkeypatch.setattr(datasets, "imdb", lambda size: tmp_path / "aclImdb")
    with pytest.raises(ValueError, match=r"0_9\.txt is not valid UTF-8"):
        datasets.imdb_reviews("sample", "train")


def test_read_review_rejects_non_utf8_bytes_clearly(tmp_path):
    path = tmp_path / "0_1.txt"
    path.write_bytes("Great film \u2014 truly ".encode() + b"\xff\xfe bad bytes")
    with pytest.raises(ValueError, match=r"not valid UTF-8 \(byte 21"):
        read_review(path)
    assert read_review(path, errors="replace").endswith("\ufffd\ufffd bad bytes")
