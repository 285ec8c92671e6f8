"""Getting a dataset into the cache: find an archive (cache, mirror, download), verify it, extract it
safely (`archive.py`), and mark the result complete. Knows nothing about IMDB or Rossmann (see
`datasets.py`).

Cache layout (`LESSONLIB_DATA`, default `data/` at the repo root):

    data/<dataset>-<size>/...      an extracted (or derived) dataset; `.complete` in it is written last
    data/<archive file>            archives downloaded from their public URL
    data/.<dataset>.lock           held while a process fills the cache for that dataset

Mirrors (`LESSONLIB_DATA_MIRROR`, folders separated by `os.pathsep`) are read-only: each folder and its
`<dataset>/` subfolder are searched for the archive names a dataset accepts.
"""

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

from lessonlib.core import REPO_ROOT
from lessonlib.data.archive import (
    Archive,
    CorruptArchiveError,
    DataError,
    DataUnavailableError,
    Files,
    archive_files,
    check_member,
    download,
    extract,
    fingerprint,
    verify,
)

CACHE_ENV = "LESSONLIB_DATA"
MIRROR_ENV = "LESSONLIB_DATA_MIRROR"
MARKER = ".complete"

@dataclass(frozen=True)
class Dataset:
    """A dataset in two sizes. `archives[size]` lists the accepted archives in order of preference;
    `make_sample` turns the files of the full dataset into those of the sample (used when no sample
    archive is found); `expected` are paths that must exist after extraction."""

    name: str
    archives: dict[str, tuple[Archive, ...]]
    make_sample: Callable[[Files], Iterator[tuple[str, bytes]]] | None = None
    expected: tuple[str, ...] = field(default=())


def cache_dir() -> Path:
    """The cache folder: `$LESSONLIB_DATA`, else `data/` at the repo root."""
    return Path(os.environ.get(CACHE_ENV) or REPO_ROOT / "data").expanduser().resolve()


def mirror_dirs() -> list[Path]:
    """The mirror folders listed in `$LESSONLIB_DATA_MIRROR` (`os.pathsep`-separated)."""
    value = os.environ.get(MIRROR_ENV, "")
    return [Path(part).expanduser() for part in value.split(os.pathsep) if part.strip()]


def fetch(dataset: Dataset, size: str = "sample") -> Path:
    """The folder of `dataset` at `size` in the cache, filling the cache first if needed.

    Sources, in order: a complete extraction in the cache (unless its archive changed); an archive in
    the cache or a mirror; for the sample, the full dataset cut down by `dataset.make_sample`; a
    download from the archive's public URL. One process at a time fills the cache (a file lock)."""
    if size not in dataset.archives:
        raise ValueError(f"{dataset.name}: size must be one of {sorted(dataset.archives)}, got {size!r}")
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(root / f".{dataset.name}.lock"):
        if size != "full" and dataset.make_sample is not None and _find(dataset, size) is None:
            return _derive(dataset, size)
        return _extracted(dataset, size)


def _find(dataset: Dataset, size: str) -> tuple[Path, Archive] | None:
    """The first accepted archive found in the cache, then in each mirror folder (and its
    `<dataset>/` subfolder)."""
    folders = [cache_dir()] + [f for m in mirror_dirs() for f in (m, m / dataset.name)]
    for folder in folders:
        for archive in dataset.archives[size]:
            if (folder / archive.name).is_file():
                return folder / archive.name, archive
    return None


def _extracted(dataset: Dataset, size: str) -> Path:
    """`dataset` at `size` extracted from its archive (found, or downloaded)."""
    target = cache_dir() / f"{dataset.name}-{size}"
    found = _find(dataset, size)
    marker = _read_marker(target)
    if marker is not None and not marker["derived"]:
        if found is None or fingerprint(found[0], marker["source"])["sha256"] == marker["source"]["sha256"]:
            return target
    if found is None:
        found = _download_any(dataset, size)
    path, archive = found
    with _set_aside_if_corrupt(path):
        source = verify(path, archive)
        _build(dataset, target, lambda tmp: extract(path, tmp), source, derived=False)
    return target


def _derive(dataset: Dataset, size: str) -> Path:
    """The sample cut from the full dataset (its archive, else its complete extraction)."""
    target = cache_dir() / f"{dataset.name}-{size}"
    marker = _read_marker(target)
    if marker is not None and not marker["derived"]:
        return target  # extracted from a sample archive that is no longer around
    found = _find(dataset, "full")
    full_marker = _read_marker(cache_dir() / f"{dataset.name}-full")
    if found is not None:
        source = fingerprint(found[0], marker["source"] if marker is not None else None)
    elif full_marker is not None:
        source = full_marker["source"]
    elif marker is not None:
        return target  # complete, and nothing left to compare it with
    else:
        found = _download_any(dataset, "full")
        source = None
    if marker is not None and source is not None and marker["source"]["sha256"] == source["sha256"]:
        return target
    make = lambda files: lambda tmp: write_files(dataset.make_sample(files), tmp)
    if found is None:
        full = folder_files(cache_dir() / f"{dataset.name}-full")
        _build(dataset, target, make(full), source, derived=True)
        return target
    path, archive = found
    with _set_aside_if_corrupt(path):
        source = verify(path, archive)
        _build(dataset, target, make(archive_files(path)), source, derived=True)
    return target


def _download_any(dataset: Dataset, size: str) -> tuple[Path, Archive]:
    """Download the first archive of `size` that has a URL into the cache."""
    with_url = [a for a in dataset.archives[size] if a.url]
    if not with_url:
        raise DataUnavailableError(_unavailable(dataset, size, None, None))
    archive = with_url[0]
    try:
        return download(archive, cache_dir() / archive.name), archive
    except DataUnavailableError as error:
        raise DataUnavailableError(_unavailable(dataset, size, archive, error)) from error
    except CorruptArchiveError as error:
        raise CorruptArchiveError(f"{error}: run again to retry, or put a good copy of {archive.name} into "
                                  f"a folder in {MIRROR_ENV}") from None


def _unavailable(dataset: Dataset, size: str, archive: Archive | None, error: Exception | None) -> str:
    names = " or ".join(a.name for a in dataset.archives[size])
    mirrors = ", ".join(f"{m}{'' if m.is_dir() else ' (missing)'}" for m in mirror_dirs()) or "none set"
    lines = [f"Cannot get {dataset.name} ({size}): no {names} found in the cache or the mirrors."]
    if archive is not None:
        lines.append(f"Downloading {archive.url} failed: {error}")
    lines += [
        f"  cache folder: {cache_dir()} (set {CACHE_ENV} to move it)",
        f"  mirror folders: {mirrors} (set {MIRROR_ENV} to folders holding the archives,"
        f" separated by {os.pathsep!r})",
        f"Fix: connect to the internet, or put {names} into the cache or a mirror folder.",
    ]
    return "\n".join(lines)


@contextmanager
def _set_aside_if_corrupt(path: Path):
    """A CorruptArchiveError from reading the archive at `path` names it and says what to do; one in the
    cache is renamed to `*.corrupt` so it is not reused."""
    try:
        yield
    except CorruptArchiveError as error:
        raise _corrupt(path, error) from None


def _corrupt(path: Path, error: Exception) -> CorruptArchiveError:
    """The error for a bad archive; one in the cache is renamed to `*.corrupt` so it is not reused."""
    if path.parent.resolve() == cache_dir():
        aside = path.with_name(path.name + ".corrupt")
        os.replace(path, aside)
        what = f"It was moved aside to {aside}; run again to fetch a fresh copy, then delete that file."
    else:
        what = (f"Replace it with a good copy, or take its folder out of {MIRROR_ENV} "
                "so the dataset is downloaded instead.")
    return CorruptArchiveError(f"Archive {path} is unusable: {error}.\n{what}")


def folder_files(folder: Path) -> Files:
    """The files under `folder` (except the completeness marker) as (relative path, read) pairs."""
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MARKER:
            yield path.relative_to(folder).as_posix(), path.read_bytes


def write_files(files: Iterator[tuple[str, bytes]], dest: Path) -> None:
    """Write (relative path, bytes) pairs under `dest`."""
    for name, data in files:
        path = dest / check_member(name, dest)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _read_marker(target: Path) -> dict | None:
    try:
        return json.loads((target / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _build(dataset: Dataset, target: Path, make: Callable[[Path], None], source: dict, derived: bool) -> None:
    """Make `target` in a temporary folder, check it, move it into place, then write the marker.
    A folder without a marker (an interrupted run) is removed and redone."""
    for leftover in target.parent.glob(f".{target.name}.*.tmp"):
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    tmp.chmod(0o755)  # mkdtemp makes it private
    try:
        make(tmp)
        missing = [p for p in dataset.expected if not (tmp / p).exists()]
        if missing:
            where = source["path"] if not derived else f"the sample derived from {source['path']}"
            raise DataError(f"{where} lacks {', '.join(missing)}: it is not the expected {dataset.name} "
                            "dataset. Replace the archive with the right one.")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
        marker = {"dataset": dataset.name, "derived": derived, "source": source}
        part = target / (MARKER + ".part")
        part.write_text(json.dumps(marker, indent=1))
        os.replace(part, target / MARKER)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
