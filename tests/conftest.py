"""Fixtures shared by more than one test module."""

import socket

import pytest

from lessonlib.data import CACHE_ENV, MIRROR_ENV


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """An empty cache and an empty mirror folder, set through the environment variables."""
    cache, mirror = tmp_path / "cache", tmp_path / "mirror"
    mirror.mkdir()
    monkeypatch.setenv(CACHE_ENV, str(cache))
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    monkeypatch.setenv("LESSONLIB_PROGRESS", "0")
    return cache, mirror


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
