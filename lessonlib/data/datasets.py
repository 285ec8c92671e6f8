"""The two datasets of the lesson, IMDB reviews and Rossmann sales, each `full` or `sample`, and the
rules that cut the samples from the full data (byte for byte the files of the sample archives)."""

from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pandas as pd

from lessonlib.data.cache import Archive, Dataset, Files, fetch

IMDB_SPLITS = {"train": ("neg", "pos"), "test": ("neg", "pos"), "unsup": ("unsup",)}
IMDB_LABELS = {"neg": 0, "pos": 1, "unsup": -1}
IMDB_SAMPLE_EVERY = 25  # the sample keeps the reviews whose id is a multiple of this, in every split

ROSSMANN_TABLES = ("train", "test", "store", "store_states", "state_names", "googletrend", "weather",
                   "sample_submission")
ROSSMANN_SAMPLE_STORES = 50  # the sample keeps the lowest-numbered stores that appear in test.csv


def imdb_sample_files(files: Files) -> Iterator[tuple[str, bytes]]:
    """The IMDB sample: README, imdb.vocab and, in every split, the reviews whose id is a multiple of 25."""
    for name, read in files:
        parts = name.split("/")
        if name in ("aclImdb/README", "aclImdb/imdb.vocab"):
            yield name, read()
        elif (len(parts) == 4 and parts[:2] in (["aclImdb", "train"], ["aclImdb", "test"])
              and parts[2] in IMDB_LABELS and parts[3].endswith(".txt")
              and int(parts[3].split("_")[0]) % IMDB_SAMPLE_EVERY == 0):
            yield name, read()


def _field(line: bytes, column: int) -> int:
    return int(line.split(b",", column + 1)[column].strip(b'"'))


def _keep_rows(data: bytes, column: int, keep: set[int]) -> bytes:
    """The header and the lines of a CSV whose `column` (an integer) is in `keep`, filtered as text."""
    header, *rows = data.split(b"\n")
    end = [rows.pop()] if rows and rows[-1] == b"" else []
    return b"\n".join([header] + [row for row in rows if _field(row, column) in keep] + end)


def rossmann_sample_files(files: Files) -> Iterator[tuple[str, bytes]]:
    """The Rossmann sample: the 50 lowest-numbered stores that appear in test.csv, all their rows in
    train/test/store/store_states, the matching sample_submission Ids, the other tables whole."""
    tables = {PurePosixPath(name).stem: (name, read()) for name, read in files if name.endswith(".csv")}
    test_name, test = tables["test"]
    stores = set(sorted({_field(row, 1) for row in test.split(b"\n")[1:] if row})[:ROSSMANN_SAMPLE_STORES])
    test = _keep_rows(test, 1, stores)
    ids = {_field(row, 0) for row in test.split(b"\n")[1:] if row}
    kept = {"train": _keep_rows(tables["train"][1], 0, stores), "test": test,
            "store": _keep_rows(tables["store"][1], 0, stores),
            "store_states": _keep_rows(tables["store_states"][1], 0, stores),
            "sample_submission": _keep_rows(tables["sample_submission"][1], 0, ids)}
    for stem, (name, data) in sorted(tables.items()):
        yield name, kept.get(stem, data)


IMDB = Dataset(
    name="imdb",
    archives={
        "full": (
            # the official archive (84 MB, with the bag-of-words .feat files)
            Archive("aclImdb_v1.tar.gz", url="https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
                    size=84_125_825, md5="7c2ac02c03563afcf9b574c7e56c153a"),
            # the deterministic repack kept in the lesson's mirror (no .feat files, same reviews)
            Archive("aclImdb.tar.gz", size=56_745_274,
                    sha256="b976e75f95ca20963ff8aa9d15afc0c99b8afd5e0d5e05ed621038dc14a12770"),
        ),
        "sample": (
            Archive("aclImdb_sample.tar.gz", size=2_730_679,
                    sha256="177f4f00277cebfc5a51a5148a4f876059379f8f4a6256ec3b1d19657f724379"),
        ),
    },
    make_sample=imdb_sample_files,
    expected=tuple(f"aclImdb/{split}/{label}" for split in ("train", "test")
                   for label in IMDB_SPLITS[split]) + ("aclImdb/train/unsup",),
)

ROSSMANN = Dataset(
    name="rossmann",
    archives={
        # fast.ai's archive. Its checksum is unknown (the mirror's copy is a rebuild whose googletrend and
        # weather tables differ in row order), so it is checked by gzip's CRC and the 8 CSVs it must hold.
        "full": (Archive("rossmann.tgz", url="https://files.fast.ai/part2/lesson14/rossmann.tgz"),),
        "sample": (
            Archive("rossmann_sample.tgz", size=712_564,
                    sha256="6d0b56b563b4636e822a08bc92587663e97f09dd782d3ececd76ca2472ea5a6b"),
        ),
    },
    make_sample=rossmann_sample_files,
    expected=tuple(f"{table}.csv" for table in ROSSMANN_TABLES),
)


def imdb(size: str = "sample") -> Path:
    """The extracted `aclImdb` folder: train/{pos,neg,unsup}, test/{pos,neg}, README, imdb.vocab."""
    return fetch(IMDB, size) / "aclImdb"


def rossmann(size: str = "sample") -> Path:
    """The folder holding Rossmann's 8 CSVs (train, test, store, store_states, state_names,
    googletrend, weather, sample_submission)."""
    return fetch(ROSSMANN, size)


def read_review(path, errors: str = "strict") -> str:
    """A review file's text. Bytes that are not UTF-8 fail with an error naming the file and the
    offset, unless `errors="replace"` (each bad byte becomes U+FFFD)."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not valid UTF-8 (byte {e.start}: {data[e.start:e.start + 4]!r}); "
                         "fix the file or read it with errors='replace'") from None


def imdb_reviews(size: str = "sample", split: str = "train") -> pd.DataFrame:
    """The reviews of one split (train, test or unsup) as columns id, rating, label (1 pos, 0 neg,
    -1 unsup), text; sorted by label, then id."""
    if split not in IMDB_SPLITS:
        raise ValueError(f"split must be one of {list(IMDB_SPLITS)}, got {split!r}")
    folder = imdb(size) / ("train" if split == "unsup" else split)
    rows = []
    for label in IMDB_SPLITS[split]:
        for path in (folder / label).glob("*.txt"):
            review_id, rating = path.stem.split("_")
            rows.append((int(review_id), int(rating), IMDB_LABELS[label], read_review(path)))
    reviews = pd.DataFrame(rows, columns=["id", "rating", "label", "text"])
    return reviews.sort_values(["label", "id"], ignore_index=True)
