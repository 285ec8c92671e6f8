"""Fixtures shared by more than one test module.

Test modules never import each other (nor this file): a helper that several of them use lives here and
reaches them as a fixture. Where tests call the helper with arguments, the fixture returns the helper
itself (`make_learner(seed=3)`, `tree(folder)`), under the helper's name.
"""

import io
import math
import socket
import tarfile
from pathlib import Path
from typing import NamedTuple

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lessonlib.data import CACHE_ENV, MIRROR_ENV
from lessonlib.data.cache import MARKER
from lessonlib.engine.learner import Learner, accuracy
from lessonlib.tabular import joins
from lessonlib.text.awd_lstm import AWDLSTM, AWDConfig
from lessonlib.text.classifier_data import ClassificationDataset, ClassifierData
from lessonlib.text.saved import save_encoder
from lessonlib.text.tokenize import SPECIAL_TOKENS
from lessonlib.text.vocab import Vocab

# No figure windows. test_learner and test_plots set this too; the modules that imported test_learner's
# helpers (lr_find plots) got it from that import, so it is set here for every module run alone.
matplotlib.use("Agg")


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """An empty cache and an empty mirror folder, set through the environment variables."""
    cache, mirror = tmp_path / "cache", tmp_path / "mirror"
    mirror.mkdir()
    monkeypatch.setenv(CACHE_ENV, str(cache))
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    monkeypatch.setenv("LESSONLIB_PROGRESS", "0")
    return cache, mirror


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def free_port():
    """free_port() -> a TCP port on 127.0.0.1 that nothing listens on right now (a new one each call).
    Session-scoped, so module-scoped fixtures (the JupyterLab server) can use it too."""
    return _free_port


# --- the data cache: tiny archives (test_data_cache, test_data_datasets) --------------------------------

def _make_archive(path: Path, files: dict[str, bytes], links: dict[str, tuple[bytes, str]] = None) -> Path:
    """A .tar.gz at `path` holding `files` (name -> bytes) and `links` (name -> (type, target))."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, (kind, target) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tar.addfile(info)
    return path


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` but the cache's marker: relative path -> bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MARKER}


@pytest.fixture
def make_archive():
    """make_archive(path, files, links=None) -> path: a .tar.gz of `files` (name -> bytes) and `links`
    (name -> (tar member type, target))."""
    return _make_archive


@pytest.fixture
def tree():
    """tree(folder) -> {relative path: bytes} of every file under `folder` but the cache's marker."""
    return _tree


# --- a small Learner on a linear rule (test_learner, test_callbacks, test_checkpoint, test_lr_finder,
# test_schedule, test_cuda) --------------------------------------------------------------------------------

def _make_data(n=256, d=8, seed=0):
    w = torch.randn(d, generator=torch.Generator().manual_seed(1234))  # one true rule for every split
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    y = (x @ w > 0).long()
    return TensorDataset(x, y)


class NumpyShuffleLoader:
    """A hand-made loader that shuffles with its own numpy generator (like the language-model stream)."""

    def __init__(self, ds, bs, seed):
        self.ds, self.bs, self.rng = ds, bs, np.random.default_rng(seed)

    def __len__(self):
        return math.ceil(len(self.ds) / self.bs)

    def __iter__(self):
        order = torch.from_numpy(self.rng.permutation(len(self.ds)))
        for i in range(len(self)):
            yield self.ds[order[i * self.bs:(i + 1) * self.bs]]


def _loaders(bs=32, seed=0, n=256, kind="torch"):
    """The same data every time; `seed` only seeds the shuffling."""
    train, valid = _make_data(n, seed=0), _make_data(n // 2, seed=1)
    if kind == "numpy":
        train_dl = NumpyShuffleLoader(train, bs, seed)
    else:
        shuffler = torch.Generator().manual_seed(seed)
        train_dl = DataLoader(train, batch_size=bs, shuffle=True, generator=shuffler)
    return train_dl, DataLoader(valid, batch_size=bs * 2)


class TwoGroups(nn.Module):
    def __init__(self, d=8, h=16, p=0.1):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Dropout(p))
        self.head = nn.Linear(h, 2)

    def forward(self, x):
        return self.head(self.body(x))

    def layer_groups(self):
        return [self.body, self.head]


def _make_learner(seed=0, kind="torch", **kw):
    torch.manual_seed(seed)
    train_dl, valid_dl = _loaders(seed=seed, kind=kind)
    return Learner(TwoGroups(), (train_dl, valid_dl), F.cross_entropy, metrics={"acc": accuracy}, **kw)


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


class CrashInSecondEpoch:
    """A callback that raises CrashInSecondEpoch.Crash as the second epoch begins (a killed run)."""

    class Crash(Exception):
        pass

    def before_epoch(self, learn):
        if learn.epoch == 1:
            raise self.Crash


def _crash_then_load(ckpt, **kw) -> Learner:
    """A 2-epoch fit that crashes in its second epoch after checkpointing, then a fresh Learner (other
    RNG state, other initial weights, as in a new process) loaded from the checkpoint."""
    crashed = _make_learner(seed=0, callbacks=[CrashInSecondEpoch()], **kw)
    with pytest.raises(CrashInSecondEpoch.Crash):
        crashed.fit(2, 1e-2, show=False, checkpoint=ckpt)
    assert ckpt.exists() and not list(ckpt.parent.glob("*.tmp"))
    torch.manual_seed(123)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(123)
    return _make_learner(seed=7, **kw).load(ckpt)


@pytest.fixture
def make_data():
    """make_data(n=256, d=8, seed=0) -> TensorDataset: d features, label = one fixed linear rule > 0."""
    return _make_data


@pytest.fixture
def loaders():
    """loaders(bs=32, seed=0, n=256, kind="torch") -> (train_dl, valid_dl) over make_data; `seed` only
    seeds the shuffling, kind="numpy" shuffles with a numpy generator instead of torch's."""
    return _loaders


@pytest.fixture
def two_groups():
    """The TwoGroups class: Linear-ReLU-Dropout body and a Linear head, two layer groups."""
    return TwoGroups


@pytest.fixture
def make_learner():
    """make_learner(seed=0, kind="torch", **kw) -> a Learner of TwoGroups on loaders(seed=seed, kind=kind)."""
    return _make_learner


@pytest.fixture
def params():
    """params(model) -> detached copies of the model's parameters."""
    return _params


@pytest.fixture
def crash_in_second_epoch():
    """The CrashInSecondEpoch callback class; the exception it raises is CrashInSecondEpoch.Crash."""
    return CrashInSecondEpoch


@pytest.fixture
def crash_then_load():
    """crash_then_load(ckpt, **kw) -> a fresh Learner loaded from the checkpoint of a 2-epoch
    make_learner(**kw) fit that crashed in its second epoch."""
    return _crash_then_load


# --- text classification (test_classifier_data, test_classifier, test_fine_tune) -----------------------

def _small_vocab():
    words = "the movie was great awful boring fun plot acting".split()
    return Vocab(SPECIAL_TOKENS + words)


def _random_reviews(n, seed=0, low=2, high=200):
    rng = np.random.default_rng(seed)
    return [rng.integers(2, 30, size=rng.integers(low, high)) for _ in range(n)]


def _toy_data(n=16, seed=0, valid=True):
    rng = np.random.default_rng(seed)
    ds = ClassificationDataset([np.r_[2, rng.integers(7, 16, size=rng.integers(3, 9))] for _ in range(n)],
                               np.arange(n) % 2)
    return ClassifierData(_small_vocab(), ds, ds, ds if valid else None)


def _saved_lm_encoder(tmp_path, seed=0):
    torch.manual_seed(seed)
    vocab = _small_vocab()
    enc = AWDLSTM(AWDConfig(len(vocab), emb_size=8, n_hid=12, n_layers=2, pad_id=vocab.pad_id))
    return save_encoder(tmp_path / "enc.pt", enc, vocab), enc


@pytest.fixture
def small_vocab():
    """small_vocab() -> a Vocab of the special tokens and 9 movie-review words."""
    return _small_vocab


@pytest.fixture
def random_reviews():
    """random_reviews(n, seed=0, low=2, high=200) -> n arrays of token ids in 2..29, of lengths
    low..high-1 (seeded)."""
    return _random_reviews


@pytest.fixture
def toy_data():
    """toy_data(n=16, seed=0, valid=True) -> ClassifierData over small_vocab: the same n short reviews
    (alternating labels) as train, valid (unless valid=False) and test."""
    return _toy_data


@pytest.fixture
def saved_lm_encoder():
    """saved_lm_encoder(folder, seed=0) -> (path, encoder): a small AWD-LSTM encoder over small_vocab,
    saved as folder/enc.pt."""
    return _saved_lm_encoder


# --- Rossmann's tables in miniature (test_tabular_features, test_tabular_joins, test_tabular_experiment) ---

TRAIN_DATES = pd.date_range("2015-07-20", "2015-07-31")
TEST_DATES = pd.date_range("2015-08-01", "2015-08-05")
WEATHER_COLS = joins.REQUIRED["weather.csv"][2:-1]


def _write_tables(folder, stores=(1, 2), states=("HE", "HB,NI")):
    """A minimal, consistent set of the seven CSVs: two stores, 12 train days, 5 test days."""
    rows = []
    for store in stores:
        for i, d in enumerate(TRAIN_DATES):
            rows.append(dict(Store=store, DayOfWeek=d.day_of_week + 1, Date=d.date(),
                             Sales=1000 + 10 * i + store, Customers=100,
                             Open=int(d.day_of_week != 6), Promo=int(i in (3, 4)),
                             StateHoliday="a" if i == 5 else "0", SchoolHoliday=int(i == 8)))
    pd.DataFrame(rows).to_csv(folder / "train.csv", index=False)
    test = [dict(Id=k + 1, Store=s, DayOfWeek=d.day_of_week + 1, Date=d.date(), Open=1, Promo=0,
                 StateHoliday="0", SchoolHoliday=0)
            for k, (s, d) in enumerate((s, d) for s in stores for d in TEST_DATES)]
    pd.DataFrame(test).to_csv(folder / "test.csv", index=False)
    pd.DataFrame(dict(Store=list(stores), StoreType=["a", "c"][: len(stores)], Assortment="a",
                      CompetitionDistance=[500.0, np.nan][: len(stores)],
                      CompetitionOpenSinceMonth=[6, np.nan][: len(stores)],
                      CompetitionOpenSinceYear=[2015, np.nan][: len(stores)],
                      Promo2=[1, 0][: len(stores)], Promo2SinceWeek=[27, np.nan][: len(stores)],
                      Promo2SinceYear=[2015, np.nan][: len(stores)],
                      PromoInterval=["Feb,May,Aug,Nov", np.nan][: len(stores)])
                 ).to_csv(folder / "store.csv", index=False)
    pd.DataFrame(dict(Store=list(stores), State=list(states))).to_csv(folder / "store_states.csv",
                                                                      index=False)
    pd.DataFrame(dict(StateName=["Hessen", "Niedersachsen"], State=["HE", "HB,NI"])).to_csv(
        folder / "state_names.csv", index=False)
    weeks = pd.date_range("2015-07-19", "2015-08-02", freq="7D")
    trend = [dict(file=f, week=f"{w.date()} - {(w + pd.Timedelta(days=6)).date()}", trend=50 + k)
             for f in ("Rossmann_DE", "Rossmann_DE_HE", "Rossmann_DE_NI") for k, w in enumerate(weeks)]
    pd.DataFrame(trend).to_csv(folder / "googletrend.csv", index=False)
    days = pd.date_range("2015-07-20", "2015-08-05")
    weather = [dict(file=name, Date=d.date(), **{c: 10.0 for c in WEATHER_COLS}, Events="Rain")
               for name in ("Hessen", "Niedersachsen") for d in days]
    pd.DataFrame(weather).to_csv(folder / "weather.csv", index=False)
    return folder


class TableDates(NamedTuple):
    train: pd.DatetimeIndex
    test: pd.DatetimeIndex


@pytest.fixture
def write_tables():
    """write_tables(folder, stores=(1, 2), states=("HE", "HB,NI")) -> folder, holding a minimal, consistent
    set of Rossmann's CSVs: the stores over table_dates.train (train.csv) and table_dates.test (test.csv)."""
    return _write_tables


@pytest.fixture
def table_dates():
    """The days write_tables writes: .train (12 days, train.csv) and .test (5 days, test.csv)."""
    return TableDates(TRAIN_DATES, TEST_DATES)


# --- small tensors and vocabularies (test_tabular_model, test_tabular_loader; test_text_vectors,
# test_text_generate) -------------------------------------------------------------------------------------

def _batch(n=8, cards=(5, 3), n_cont=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    cats = torch.stack([torch.randint(0, c, (n,), generator=g) for c in cards], dim=1)
    return cats, torch.randn(n, n_cont, generator=g)


def _vocab():
    counts = {"the": 6, "movie": 3, "great": 1, "zzz": 2}
    return Vocab(SPECIAL_TOKENS + list(counts), counts)


@pytest.fixture
def batch():
    """batch(n=8, cards=(5, 3), n_cont=2, seed=0) -> (cats, conts): n rows of seeded categorical codes
    (one column per cardinality) and n_cont standard-normal continuous columns."""
    return _batch


@pytest.fixture
def vocab():
    """vocab() -> a Vocab of the special tokens and 4 words with their counts."""
    return _vocab
