"""The cache machinery of lessonlib.data.cache, on tiny archives made in tmp_path: order of sources,
downloads from a local HTTP server, verification, safe and atomic extraction, locking, samples."""

import functools
import hashlib
import http.server
import json
import multiprocessing
import os
import tarfile
import threading
from pathlib import Path

import pytest

from lessonlib.data import cache as cache_module
from lessonlib.data.cache import (
    CACHE_ENV,
    MARKER,
    MIRROR_ENV,
    Archive,
    CorruptArchiveError,
    DataError,
    Dataset,
    DataUnavailableError,
    fetch,
)

FILES = {f"toy/{i}.txt": f"file {i}\n".encode() * (i + 1) for i in range(6)}


def even_files(files):
    """The toy sample rule: files with an even number."""
    for name, read in files:
        if int(Path(name).stem) % 2 == 0:
            yield name, read()


def toy(full=None) -> Dataset:
    """A dataset of a few text files; `full` replaces the spec of its full archive."""
    archives = {"full": (full or Archive("toy.tar.gz"),), "sample": (Archive("toy_sample.tgz"),)}
    return Dataset("toy", archives, make_sample=even_files, expected=("toy/0.txt",))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def closed_port_url(free_port) -> str:
    """A URL on 127.0.0.1 where nothing listens: a download there fails like having no network."""
    return f"http://127.0.0.1:{free_port()}/toy.tar.gz"


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; `/short/<file>` announces 100 bytes more than it sends (a dropped connection)."""

    def do_GET(self):
        if self.path.startswith("/short/"):
            data = (Path(self.directory) / self.path.removeprefix("/short/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data) + 100))
            self.end_headers()
            self.wfile.write(data)
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 (random port) serving tmp_path/www; yields (folder, base url)."""
    www = tmp_path / "www"
    www.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


# --- order of sources ---------------------------------------------------------------------------------

def test_extracts_an_archive_from_the_mirror_and_marks_it_complete(dirs, make_archive, tree):
    cache, mirror = dirs
    archive = make_archive(mirror / "toy.tar.gz", FILES)
    folder = fetch(toy(), "full")
    assert folder == cache / "toy-full"
    assert tree(folder) == FILES
    marker = json.loads((folder / MARKER).read_text())
    assert marker["derived"] is False
    assert marker["source"]["sha256"] == sha256(archive)
    assert not list(cache.glob(".toy-full.*"))  # no temporary folder left behind


def test_mirror_lists_several_folders_and_their_dataset_subfolders(dirs, tmp_path, monkeypatch, make_archive,
                                                                   tree):
    cache, _ = dirs
    second = tmp_path / "second"
    make_archive(second / "toy" / "toy.tar.gz", FILES)
    monkeypatch.setenv(MIRROR_ENV, os.pathsep.join([str(tmp_path / "missing"), str(second)]))
    assert tree(fetch(toy(), "full")) == FILES


def test_archive_in_the_cache_comes_before_the_mirror(dirs, make_archive):
    cache, mirror = dirs
    make_archive(mirror / "toy.tar.gz", {"toy/0.txt": b"from the mirror"})
    make_archive(cache / "toy.tar.gz", {"toy/0.txt": b"from the cache"})
    assert (fetch(toy(), "full") / "toy/0.txt").read_bytes() == b"from the cache"


def test_complete_extraction_is_used_without_archive_or_network(dirs, make_archive, tree, closed_port_url):
    cache, mirror = dirs
    make_archive(mirror / "toy.tar.gz", FILES)
    first = fetch(toy(), "full")
    (mirror / "toy.tar.gz").unlink()
    assert fetch(toy(full=Archive("toy.tar.gz", url=closed_port_url)), "full") == first
    assert tree(first) == FILES


def test_unchanged_archive_keeps_the_extraction_and_a_changed_one_redoes_it(dirs, make_archive, tree):
    cache, mirror = dirs
    archive = make_archive(mirror / "toy.tar.gz", FILES)
    folder = fetch(toy(), "full")
    (folder / "sentinel").write_bytes(b"")
    os.utime(archive, ns=(0, 10**18))  # touched, same bytes: hashed again, kept
    fetch(toy(), "full")
    assert (folder / "sentinel").exists()
    make_archive(archive, {"toy/0.txt": b"new data"})
    assert tree(fetch(toy(), "full")) == {"toy/0.txt": b"new data"}


def test_no_network_and_no_mirror_names_the_url_the_cache_and_the_variables(dirs, closed_port_url):
    cache, _ = dirs
    url = closed_port_url
    with pytest.raises(DataUnavailableError) as error:
        fetch(toy(full=Archive("toy.tar.gz", url=url)), "full")
    for part in (url, str(cache), CACHE_ENV, MIRROR_ENV, "toy.tar.gz"):
        assert part in str(error.value)


def test_bad_size_is_refused(dirs):
    with pytest.raises(ValueError, match="size must be one of"):
        fetch(toy(), "medium")


# --- downloads ------------------------------------------------------------------------------------------

def test_download_goes_to_the_cache_after_checks(dirs, server, make_archive, tree):
    cache, _ = dirs
    www, base = server
    archive = make_archive(www / "toy.tar.gz", FILES)
    spec = Archive("toy.tar.gz", url=f"{base}/toy.tar.gz", size=archive.stat().st_size,
                   sha256=sha256(archive), md5=hashlib.md5(archive.read_bytes()).hexdigest())
    assert tree(fetch(toy(full=spec), "full")) == FILES
    assert (cache / "toy.tar.gz").read_bytes() == archive.read_bytes()
    assert not list(cache.glob("*.part"))


def test_download_shows_a_progress_bar(dirs, server, monkeypatch, capsys, make_archive):
    www, base = server
    make_archive(www / "toy.tar.gz", FILES)
    monkeypatch.setenv("LESSONLIB_PROGRESS", "1")
    fetch(toy(full=Archive("toy.tar.gz", url=f"{base}/toy.tar.gz")), "full")
    assert "download toy.tar.gz" in capsys.readouterr().err


@pytest.mark.parametrize("field", ["sha256", "md5"])
def test_download_with_a_wrong_checksum_is_discarded(dirs, server, field, make_archive):
    cache, _ = dirs
    www, base = server
    make_archive(www / "toy.tar.gz", FILES)
    url = f"{base}/toy.tar.gz"
    with pytest.raises(CorruptArchiveError, match=f"{url} has {field}") as error:
        fetch(toy(full=Archive("toy.tar.gz", url=url, **{field: "0" * 8})), "full")
    assert MIRROR_ENV in str(error.value)
    assert sorted(p.name for p in cache.iterdir()) == [".toy.lock"]  # no archive, no partial file


@pytest.mark.parametrize("how", ["wrong known size", "connection dropped"])
def test_incomplete_download_is_discarded(dirs, server, how, make_archive):
    cache, _ = dirs
    www, base = server
    archive = make_archive(www / "toy.tar.gz", FILES)
    if how == "wrong known size":
        spec = Archive("toy.tar.gz", url=f"{base}/toy.tar.gz", size=archive.stat().st_size + 1)
    else:
        spec = Archive("toy.tar.gz", url=f"{base}/short/toy.tar.gz")
    with pytest.raises(DataUnavailableError, match=spec.url):
        fetch(toy(full=spec), "full")
    assert sorted(p.name for p in cache.iterdir()) == [".toy.lock"]


def test_missing_file_on_the_server_is_reported(dirs, server):
    _, base = server
    with pytest.raises(DataUnavailableError, match="404"):
        fetch(toy(full=Archive("toy.tar.gz", url=f"{base}/nothing.tar.gz")), "full")


# --- extraction: atomic, safe, corrupt archives ---------------------------------------------------------

def test_folder_without_marker_from_an_interrupted_run_is_redone(dirs, make_archive, tree):
    cache, mirror = dirs
    make_archive(mirror / "toy.tar.gz", FILES)
    half = cache / "toy-full" / "toy"
    half.mkdir(parents=True)
    (half / "0.txt").write_bytes(b"half written")
    (cache / ".toy-full.abc.tmp").mkdir()  # temporary folder of a killed run
    assert tree(fetch(toy(), "full")) == FILES
    assert not (cache / ".toy-full.abc.tmp").exists()


def test_failed_extraction_leaves_no_folder_and_no_marker(dirs, make_archive):
    cache, mirror = dirs
    make_archive(mirror / "toy.tar.gz", {"toy/1.txt": b"but toy/0.txt is expected"})
    with pytest.raises(DataError, match="lacks toy/0.txt"):
        fetch(toy(), "full")
    assert not (cache / "toy-full").exists()
    assert not list(cache.glob(".toy-full.*"))


@pytest.mark.parametrize("bad", [
    {"files": {"/tmp/lessonlib-absolute.txt": b"x"}},
    {"files": {"toy/../../lessonlib-dotdot.txt": b"x"}},
    {"links": {"toy/link": (tarfile.SYMTYPE, "../../outside")}},
    {"links": {"toy/link": (tarfile.SYMTYPE, "/etc/passwd")}},
    {"links": {"toy/link": (tarfile.LNKTYPE, "../outside")}},
], ids=["absolute", "dotdot", "symlink-out", "symlink-absolute", "hardlink-out"])
def test_unsafe_members_are_refused(dirs, tmp_path, bad, make_archive):
    cache, _ = dirs
    archive = make_archive(cache / "toy.tar.gz", {**FILES, **bad.get("files", {})}, bad.get("links"))
    with pytest.raises(CorruptArchiveError, match="outside|unsafe") as error:
        fetch(toy(), "full")
    assert str(archive) in str(error.value)
    assert not (cache / "toy-full").exists()
    assert not list(tmp_path.rglob("lessonlib-*.txt")) and not Path("/tmp/lessonlib-absolute.txt").exists()


def test_python_without_the_tar_data_filter_is_told_to_upgrade(dirs, monkeypatch, make_archive):
    _, mirror = dirs
    make_archive(mirror / "toy.tar.gz", FILES)
    monkeypatch.delattr(tarfile, "data_filter")
    with pytest.raises(DataError, match="upgrade"):
        fetch(toy(), "full")


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_archive_in_the_cache_is_moved_aside_and_not_reused(dirs, make_archive):
    cache, _ = dirs
    archive = make_archive(cache / "toy.tar.gz", {f"toy/{i}.txt": os.urandom(5000) for i in range(20)})
    truncate(archive)
    with pytest.raises(CorruptArchiveError, match="truncated or damaged") as error:
        fetch(toy(), "full")
    assert str(archive) in str(error.value) and "moved aside" in str(error.value)
    assert not archive.exists() and (cache / "toy.tar.gz.corrupt").exists()
    with pytest.raises(DataUnavailableError):  # not silently reused
        fetch(toy(), "full")


@pytest.mark.parametrize("damage", ["truncated", "not gzip", "flipped byte"])
def test_damaged_archive_in_the_mirror_is_reported_and_left_alone(dirs, damage, make_archive):
    _, mirror = dirs
    archive = make_archive(mirror / "toy.tar.gz", {f"toy/{i}.txt": os.urandom(5000) for i in range(20)})
    data = bytearray(archive.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "not gzip":
        data = b"<html>not found</html>"
    else:
        data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    with pytest.raises(CorruptArchiveError) as error:
        fetch(toy(), "full")
    assert str(archive) in str(error.value) and MIRROR_ENV in str(error.value)
    assert archive.read_bytes() == bytes(data)


def test_known_checksum_mismatch_is_corruption(dirs, make_archive):
    cache, _ = dirs
    archive = make_archive(cache / "toy.tar.gz", FILES)
    with pytest.raises(CorruptArchiveError, match="sha256"):
        fetch(toy(full=Archive("toy.tar.gz", sha256="0" * 64)), "full")
    assert not archive.exists() and (cache / "toy.tar.gz.corrupt").exists()


# --- samples --------------------------------------------------------------------------------------------

EVEN = {name: data for name, data in FILES.items() if int(Path(name).stem) % 2 == 0}


def test_sample_archive_is_used_when_present(dirs, make_archive, tree):
    _, mirror = dirs
    make_archive(mirror / "toy_sample.tgz", {"toy/0.txt": b"the sample archive"})
    make_archive(mirror / "toy.tar.gz", FILES)
    assert tree(fetch(toy(), "sample")) == {"toy/0.txt": b"the sample archive"}


def test_sample_is_derived_from_the_full_archive(dirs, make_archive, tree):
    cache, mirror = dirs
    make_archive(mirror / "toy.tar.gz", FILES)
    folder = fetch(toy(), "sample")
    assert folder == cache / "toy-sample" and tree(folder) == EVEN
    assert json.loads((folder / MARKER).read_text())["derived"] is True
    assert not (cache / "toy-full").exists()  # no need to extract the full dataset


@pytest.mark.parametrize("first", ["toy_sample.tgz", "toy.tar.gz"])
def test_complete_sample_is_used_when_its_sources_are_gone(dirs, first, make_archive, tree, closed_port_url):
    _, mirror = dirs
    make_archive(mirror / first, FILES if first == "toy.tar.gz" else EVEN)
    folder = fetch(toy(), "sample")
    (mirror / first).unlink()
    assert fetch(toy(full=Archive("toy.tar.gz", url=closed_port_url)), "sample") == folder
    assert tree(folder) == EVEN


def test_sample_is_derived_from_the_full_extraction_when_no_archive_is_left(dirs, make_archive, tree):
    _, mirror = dirs
    make_archive(mirror / "toy.tar.gz", FILES)
    fetch(toy(), "full")
    (mirror / "toy.tar.gz").unlink()
    assert tree(fetch(toy(), "sample")) == EVEN


def test_derived_sample_is_redone_when_the_full_archive_changes(dirs, make_archive, tree):
    _, mirror = dirs
    make_archive(mirror / "toy.tar.gz", FILES)
    fetch(toy(), "sample")
    changed = {**FILES, "toy/2.txt": b"changed"}
    make_archive(mirror / "toy.tar.gz", changed)
    assert tree(fetch(toy(), "sample"))["toy/2.txt"] == b"changed"


def test_sample_archive_appearing_later_replaces_a_derived_sample(dirs, make_archive, tree):
    _, mirror = dirs
    make_archive(mirror / "toy.tar.gz", FILES)
    fetch(toy(), "sample")
    make_archive(mirror / "toy_sample.tgz", {"toy/0.txt": b"the sample archive"})
    assert tree(fetch(toy(), "sample")) == {"toy/0.txt": b"the sample archive"}


def test_sample_downloads_the_full_archive_when_nothing_is_local(dirs, server, make_archive, tree):
    cache, _ = dirs
    www, base = server
    make_archive(www / "toy.tar.gz", FILES)
    assert tree(fetch(toy(full=Archive("toy.tar.gz", url=f"{base}/toy.tar.gz")), "sample")) == EVEN
    assert (cache / "toy.tar.gz").exists()


# --- two processes at once ----------------------------------------------------------------------------

def _fetch_in_child(barrier, results, size, tree):
    barrier.wait()
    try:
        folder = fetch(toy(), size)
        results.put((str(folder), tree(folder)))
    except BaseException as error:  # reported to the parent, which fails the test
        results.put(("error", repr(error)))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
@pytest.mark.parametrize("size", ["full", "sample"])
def test_processes_filling_the_cache_at_once_do_not_corrupt_it(dirs, size, make_archive, tree):
    cache, mirror = dirs
    files = {f"toy/{i}.txt": os.urandom(2000) for i in range(400)}
    make_archive(mirror / "toy.tar.gz", files)
    context = multiprocessing.get_context("fork")
    n = 4
    barrier, results = context.Barrier(n), context.Queue()
    workers = [context.Process(target=_fetch_in_child, args=(barrier, results, size, tree)) for _ in range(n)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    expected = files if size == "full" else {k: v for k, v in files.items() if int(Path(k).stem) % 2 == 0}
    for folder, got in outcomes:
        assert folder == str(cache / f"toy-{size}"), got
        assert got == expected
    assert not list(cache.glob(f".toy-{size}.*"))


def test_lock_file_sits_in_the_cache(dirs, monkeypatch, make_archive):
    cache, mirror = dirs
    make_archive(mirror / "toy.tar.gz", FILES)
    seen = []
    real = cache_module.FileLock
    monkeypatch.setattr(cache_module, "FileLock", lambda path: seen.append(path) or real(path))
    fetch(toy(), "full")
    assert seen == [cache / ".toy.lock"]
