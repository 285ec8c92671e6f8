"""One dataset archive: download it (to a temporary file, renamed only once complete and checked), check
its size and checksums, and read or extract its tar members safely. Anything wrong with the file raises
`CorruptArchiveError`; what to do about it (set the file aside, say which folder) is `cache.py`'s call.
"""

import gzip
import hashlib
import http.client
import os
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lessonlib.core import progress

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
            _check_sums(tmp, archive, hashes(tmp), f"the download of {archive.url}")
        except CorruptArchiveError as error:
            raise CorruptArchiveError(f"{error}. The file was discarded") from None
        os.replace(tmp, dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def hashes(path: Path) -> dict[str, str]:
    """The sha256 and md5 hex digests of the file at `path`, read once."""
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


def fingerprint(path: Path, previous: dict | None = None, sha256: str | None = None) -> dict:
    """Path, size, mtime and sha256 of an archive (the record a cache marker keeps); the hash is
    `sha256` if given, else reused from `previous` when the file looks unchanged (same path, size and
    mtime), else computed."""
    stat = path.stat()
    record = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if sha256 is None and previous is not None and all(previous.get(k) == v for k, v in record.items()):
        sha256 = previous["sha256"]
    return {**record, "sha256": sha256 or hashes(path)["sha256"]}


def verify(path: Path, archive: Archive) -> dict:
    """The archive's `fingerprint`, after checking its size and checksums where known (a mismatch
    raises CorruptArchiveError)."""
    sums = hashes(path)
    got = path.stat().st_size
    if archive.size is not None and got != archive.size:
        raise CorruptArchiveError(f"{path} has {got:,} bytes, expected {archive.size:,}")
    _check_sums(path, archive, sums, str(path))
    return fingerprint(path, sha256=sums["sha256"])


def check_member(name: str, archive: Path) -> str:
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
            check_member(member.name, archive)
            tar.extract(member, dest, filter="data")
        _read_to_end(tar)


@contextmanager
def _tar_errors(archive: Path):
    """Every way reading the tar archive can fail (an unsafe member, a truncated or damaged stream)
    becomes one CorruptArchiveError saying what is wrong with it."""
    try:
        yield
    except tarfile.FilterError as error:
        raise CorruptArchiveError(f"unsafe member refused: {error}") from None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise CorruptArchiveError(f"it is truncated or damaged ({type(error).__name__}: {error})") from error


def _read_to_end(tar: tarfile.TarFile) -> None:
    """Read the compressed stream to its end: gzip checks its length and CRC there."""
    while tar.fileobj.read(1 << 20):
        pass


def archive_files(archive: Path) -> Files:
    """The regular files of a tar archive as (relative path, read) pairs, in archive order."""
    with _tar_errors(archive), tarfile.open(archive, "r:*") as tar:
        for member in tar:
            name = check_member(member.name, archive)
            if member.isfile():
                yield name, lambda member=member: tar.extractfile(member).read()
        _read_to_end(tar)
