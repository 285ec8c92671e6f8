"""Fixtures shared by more than one test module."""

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
