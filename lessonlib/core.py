"""Seeding, device choice, progress bars, atomic file writes, the version banner every notebook
prints first, and the one way a model is run for evaluation (`eval_outputs`).

Imported by every other module; imports nothing of ours.
"""

import contextlib
import os
import platform
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def atomic_write(path):
    """`with atomic_write(path) as f:` writes a binary temporary file beside `path` (parents made),
    renamed over `path` only when the block succeeds and deleted when it fails, so a crash never leaves
    half a file where a complete one is expected."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.chmod(tmp, 0o644)  # mkstemp makes it private; saved files are shared like any data file
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def seed_everything(seed: int) -> int:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return seed


def default_device() -> torch.device:
    """The best device here: cuda, then mps, then cpu."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def progress_enabled() -> bool:
    """Progress bars are on unless LESSONLIB_PROGRESS=0 (the test command and the committed
    notebook outputs turn them off so nbval compares stable outputs)."""
    return os.environ.get("LESSONLIB_PROGRESS", "1").lower() not in ("0", "false", "off", "no")


def progress(iterable=None, desc: str | None = None, total: int | None = None, disable: bool = False,
             unit: str = "it", unit_scale: bool = False):
    """A tqdm bar (a widget in Jupyter, text in a terminal) that goes away when done, silent when
    progress is off (whatever `disable` says)."""
    from tqdm.auto import tqdm

    if iterable is not None and not hasattr(iterable, "__next__"):
        # tqdm.auto calls iter() in its constructor and again when looping: a DataLoader would draw its
        # shuffling seed twice. Hand it one iterator (keeping the length for the bar).
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)
        iterable = iter(iterable)
    return tqdm(iterable, desc=desc, total=total, disable=disable or not progress_enabled(), unit=unit,
                unit_scale=unit_scale, leave=False)


def versions() -> dict:
    """Versions of python and the libraries the notebooks depend on."""
    import matplotlib
    import pandas
    import spacy

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pandas.__version__,
        "matplotlib": matplotlib.__version__,
        "spacy": spacy.__version__,
    }


def banner(seed: int | None = None, device: torch.device | None = None) -> str:
    """One line for the top of a notebook (`print(banner(seed))`): versions, device and seed."""
    parts = [f"{name} {version}" for name, version in versions().items()]
    parts.append(f"device {device or default_device()}")
    if seed is not None:
        parts.append(f"seed {seed}")
    return " | ".join(parts)


def n_batches(dl, name: str) -> int:
    """len(dl), with a clear error for a loader that yields nothing."""
    n = len(dl)
    if n == 0:
        raise ValueError(f"{name} is empty: it yields no batches. Check that its dataset has samples and "
                         "that batch_size is not larger than the dataset when drop_last=True.")
    return n


@contextlib.contextmanager
def eval_mode(model):
    """`model` in eval mode (dropout off, batch norm on its running statistics) and without gradients
    inside the block; afterwards every submodule is back in the mode it had, also after an error (a
    fresh wrapper around a model in eval mode leaves that model in eval mode)."""
    modes = [(m, m.training) for m in model.modules()]  # parents before their children
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        for m, mode in modes:
            if m.training != mode:
                m.train(mode)


def to_device(batch, device):
    """Move tensors (also inside tuples, lists and dicts) to `device`; anything else is left alone."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def eval_outputs(model, batches, device=None, autocast=contextlib.nullcontext, active=()):
    """Yields `(model(x), y)` for each `(x, y)` of `batches`, in the order they come: the one loop behind
    every evaluation (the Learner's, the classifier's scores and pooled features, Monte Carlo dropout).

    The model runs in eval mode (dropout off, batch norm on its running statistics), without
    gradients, on `device` (by default where its parameters are; the CPU for a model without any),
    each call inside `autocast()`; the modules in `active` stay in training mode (Monte Carlo
    dropout). The model gets its previous mode back when the loop ends, also after an error."""
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    with eval_mode(model):
        for m in active:
            m.train()
        for batch in batches:
            x, y = to_device(batch, device)
            with autocast():
                out = model(x)
            yield out, y
