"""Getting a dataset into the cache: find an archive (cache, mirror, download), verify it, extract it
safely, and mark the result complete. Knows nothing about IMDB or Rossmann (see `datasets.py`).

Cache layout (`LESSONLIB_DATA`, default `data/` at the repo root):

    data/<dataset>-<size>/...      an extracted (or derived) dataset; `.complete` in it is written last
    data/<archive file>            archives downloaded from their public URL
    data/.<dataset>.lock           held while a process fills the cache for that dataset

Mirrors (`LESSONLIB_DATA_MIRROR`, folders separated by `os.pathsep`) are read-only: each folder and its
`<dataset>/` subfolder are searched for the archive names a dataset accepts.
"""

import gzip
import hashlib
import http.client
import json
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from filelock import FileLock

from lessonlib.core import REPO_ROOT, progress

CACHE_ENV = "LESSONLIB_DATA"
MIRROR_ENV = "LESSONLIB_DATA_MIRROR"
MARKER = ".complete"

# A stream of (relative path, read) pairs: the files of a dataset, read on demand.
Files = Iterator[tuple[str, Callable[[], bytes]]]


class DataError(RuntimeError):
    """A dataset could not be provided; the message says why and what to do."""


class DataUnavailableError(DataError):
    """No copy of the dataset was found and the download failed."""


class CorruptArchiveError(DataError):
    """An archive is truncated, damaged, unsafe or not the expected file."""


@dataclass(frozen=True)
class Archive:
    """One accepted archive file: its name (looked for in the cache and mirrors), where to download
    it, and its size and checksums when known (`None`: not checked)."""

    name: str
    url: str | None = None
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None


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
        if found is None or _fingerprint(found[0], marker["source"])["sha256"] == marker["source"]["sha256"]:
            return target
    if found is None:
        found = _download_any(dataset, size)
    path, archive = found
    source = _verify(path, archive)
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
        source = _fingerprint(found[0], marker["source"] if marker is not None else None)
    elif full_marker is not None:
        source = full_marker["source"]
    elif marker is not None:
        return target  # complete, and nothing left to compare it with
    else:
        found = _download_any(dataset, "full")
        source = None
    if marker is not None and source is not None and marker["source"]["sha256"] == source["sha256"]:
        return target
    if found is not None:
        path, archive = found
        source = _verify(path, archive)
        files = lambda: archive_files(path)
    else:
        files = lambda: folder_files(cache_dir() / f"{dataset.name}-full")
    _build(dataset, target, lambda tmp: write_files(dataset.make_sample(files()), tmp), source, derived=True)
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


def download(archive: Archive, dest: Path) -> Path:
    """Download `archive.url` to a temporary file next to `dest` (with a progress bar), check its
    size and checksums, and only then rename it to `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(archive.url, timeout=60) as response:
                    announced = int(response.headers.get("Content-Length") or 0) or None
                    bar = progress(total=announced or archive.size, unit="B", unit_scale=True,
                                   desc=f"download {dest.name}")
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                        bar.update(len(chunk))
                    bar.close()
            except urllib.error.HTTPError as error:
                raise DataUnavailableError(str(error)) from error
            except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
                raise DataUnavailableError(str(getattr(error, "reason", None) or repr(error))) from error
        got = tmp.stat().st_size
        for expected in (announced, archive.size):
            if expected is not None and got != expected:
                raise DataUnavailableError(
                    f"the download of {archive.url} is incomplete ({got:,} of {expected:,} bytes); "
                    "run again to retry")
        try:
            _check_sums(tmp, archive, _hashes(tmp), f"the download of {archive.url}")
        except CorruptArchiveError as error:
            raise CorruptArchiveError(f"{error}. The file was discarded: run again to retry, or put a "
                                      f"good copy of {archive.name} into a folder in {MIRROR_ENV}") from None
        os.replace(tmp, dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def _hashes(path: Path) -> dict[str, str]:
    sha256, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha256.update(chunk)
            md5.update(chunk)
    return {"sha256": sha256.hexdigest(), "md5": md5.hexdigest()}


def _check_sums(path: Path, archive: Archive, sums: dict[str, str], what: str) -> None:
    for kind in ("sha256", "md5"):
        expected = getattr(archive, kind)
        if expected is not None and sums[kind] != expected:
            raise CorruptArchiveError(f"{what} has {kind} {sums[kind]}, expected {expected}")


def _fingerprint(path: Path, previous: dict | None = None) -> dict:
    """Path, size, mtime and sha256 of an archive; the hash is reused from `previous` when the file
    looks unchanged (same path, size and mtime)."""
    stat = path.stat()
    record = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if previous is not None and all(previous.get(k) == v for k, v in record.items()):
        return {**record, "sha256": previous["sha256"]}
    return {**record, "sha256": _hashes(path)["sha256"]}


def _verify(path: Path, archive: Archive) -> dict:
    """Check size and checksums of an archive where known; a mismatch is handled as corruption."""
    sums = _hashes(path)
    try:
        got = path.stat().st_size
        if archive.size is not None and got != archive.size:
            raise CorruptArchiveError(f"{path} has {got:,} bytes, expected {archive.size:,}")
        _check_sums(path, archive, sums, str(path))
    except CorruptArchiveError as error:
        raise _corrupt(path, error) from None
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sums["sha256"]}


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


def _check_member(name: str, archive: Path) -> str:
    """`name` as a safe relative path, or an error for absolute paths and `..` parts."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or (parts and ":" in parts[0]) or ".." in parts:
        raise CorruptArchiveError(f"{archive} holds {name!r}, which points outside the extraction folder; "
                                  "refusing to extract it (it is not the expected dataset)")
    return "/".join(p for p in parts if p != ".")


def extract(archive: Path, dest: Path) -> None:
    """Extract a (gzipped) tar archive into `dest`, refusing absolute paths, `..` members and links
    that escape `dest` (tarfile's `data` filter), and reading the stream to its end so a truncated
    or damaged archive raises `CorruptArchiveError`."""
    if not hasattr(tarfile, "data_filter"):
        raise DataError("Safe extraction needs tarfile's data filter: Python 3.10.12+, 3.11.4+ or 3.12+. "
                        f"This is Python {sys.version.split()[0]}; please upgrade it.")
    with _tar_errors(archive), tarfile.open(archive, "r:*") as tar:
        for member in progress(tar, desc=f"extract {archive.name}", unit=" files"):
            _check_member(member.name, archive)
            tar.extract(member, dest, filter="data")
        _read_to_end(tar)


@contextmanager
def _tar_errors(archive: Path):
    """Every way reading the tar archive can fail (an unsafe member, a truncated or damaged stream)
    becomes one CorruptArchiveError that names the archive and says what to do."""
    try:
        yield
    except tarfile.FilterError as error:
        raise _corrupt(archive, CorruptArchiveError(f"unsafe member refused: {error}")) from None
    except CorruptArchiveError as error:
        raise _corrupt(archive, error) from None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        damaged = CorruptArchiveError(f"it is truncated or damaged ({type(error).__name__}: {error})")
        raise _corrupt(archive, damaged) from error


def _read_to_end(tar: tarfile.TarFile) -> None:
    """Read the compressed stream to its end: gzip checks its length and CRC there."""
    while tar.fileobj.read(1 << 20):
        pass


def archive_files(archive: Path) -> Files:
    """The regular files of a tar archive as (relative path, read) pairs, in archive order."""
    with _tar_errors(archive), tarfile.open(archive, "r:*") as tar:
        for member in tar:
            name = _check_member(member.name, archive)
            if member.isfile():
                yield name, lambda member=member: tar.extractfile(member).read()
        _read_to_end(tar)


def folder_files(folder: Path) -> Files:
    """The files under `folder` (except the completeness marker) as (relative path, read) pairs."""
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MARKER:
            yield path.relative_to(folder).as_posix(), path.read_bytes


def write_files(files: Iterator[tuple[str, bytes]], dest: Path) -> None:
    """Write (relative path, bytes) pairs under `dest`."""
    for name, data in files:
        path = dest / _check_member(name, dest)
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
