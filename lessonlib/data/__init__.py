"""Datasets: `imdb(size)`, `rossmann(size)` (folders in the cache) and `imdb_reviews(size, split)`.

`cache.py` fills the cache (archive in the cache or a mirror, else a download; markers, locking);
`archive.py` handles one archive file (download, checksums, safe extraction);
`datasets.py` knows the two datasets and how their samples are cut.
"""

from lessonlib.data.cache import (
    CACHE_ENV,
    MIRROR_ENV,
    Archive,
    CorruptArchiveError,
    DataError,
    Dataset,
    DataUnavailableError,
    cache_dir,
    fetch,
    mirror_dirs,
)
from lessonlib.data.datasets import IMDB, ROSSMANN, imdb, imdb_reviews, read_review, rossmann

__all__ = ["IMDB", "ROSSMANN", "imdb", "imdb_reviews", "read_review", "rossmann", "CACHE_ENV", "MIRROR_ENV", "Archive",
           "CorruptArchiveError", "DataError", "Dataset", "DataUnavailableError", "cache_dir", "fetch",
           "mirror_dirs"]
