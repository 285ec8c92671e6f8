"""Checkpoints that resume a fit exactly: weights, optimizer, gradient scaler, position in the
schedule, history, and every random generator the run draws from (Python, NumPy, torch, CUDA, and
the ones a loader or its sampler keeps), so a resumed run shuffles and drops out as the unbroken one.
"""

import random
from pathlib import Path

import numpy as np
import torch

from lessonlib.core import atomic_write
from lessonlib.engine import distributed as ddp


def rng_states() -> dict:
    """The global generators' states (NumPy's key array as a tensor, so `weights_only` loads it)."""
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    np_state = np.random.get_state()
    state["numpy"] = (np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:])
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_states(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def loader_rngs(dl) -> list:
    """The random generators (torch or numpy) that a loader, its sampler or batch sampler keep as
    `.generator` or `.rng`."""
    parts = [dl, getattr(dl, "sampler", None), getattr(dl, "batch_sampler", None)]
    parts.append(getattr(parts[2], "batches", None))  # the batch sampler a ShardBatches (DDP) draws from
    parts += [getattr(parts[2], "sampler", None), getattr(parts[3], "sampler", None)]
    found = []
    for part in parts:
        for g in (getattr(part, "generator", None), getattr(part, "rng", None)):
            if isinstance(g, (torch.Generator, np.random.Generator)) and all(g is not f for f in found):
                found.append(g)
    return found


def get_loader_rngs(dl) -> list:
    return [g.get_state() if isinstance(g, torch.Generator) else g.bit_generator.state
            for g in loader_rngs(dl)]


def set_loader_rngs(dl, states) -> None:
    for g, state in zip(loader_rngs(dl), states, strict=False):
        if isinstance(g, torch.Generator):
            g.set_state(state)
        else:
            g.bit_generator.state = state


def training_state(learn) -> dict:
    """What a fit changes and a resume needs, by reference (copy it to keep it): weights, optimizer,
    scaler, position, history, and every random generator (global and the training loader's)."""
    rec = learn.recorder
    return {"model": learn.model.state_dict(), "opt": learn.opt.state_dict(),
            "scaler": learn.scaler.state_dict() if learn.scaler.is_enabled() else None,
            "epoch": learn.epoch, "fit_args": learn.fit_args, "history": rec.rows,
            "batch_losses": rec.batch_losses, "epoch_ends": rec.epoch_ends, "rng": rng_states(),
            "loader_rng": get_loader_rngs(learn.train_dl)}


def set_training_state(learn, state: dict) -> None:
    """Put back into `learn` what `training_state` returned."""
    learn.model.load_state_dict(state["model"])
    learn.opt.load_state_dict(state["opt"])
    if state["scaler"] and learn.scaler.is_enabled():
        learn.scaler.load_state_dict(state["scaler"])
    learn.epoch, learn.fit_args = state["epoch"], state["fit_args"]
    rec = learn.recorder
    rec.rows, rec.batch_losses, rec.epoch_ends = state["history"], state["batch_losses"], state["epoch_ends"]
    set_rng_states(state["rng"])
    set_loader_rngs(learn.train_dl, state["loader_rng"])


def save_checkpoint(learn, path) -> Path:
    """Write `training_state` to `path` (rank 0 only), via a temporary file and a rename so a crash
    never leaves half a checkpoint."""
    path = Path(path)
    if ddp.is_main():
        with atomic_write(path) as f:
            torch.save(training_state(learn), f)
    ddp.barrier()
    return path


def load_checkpoint(learn, path) -> None:
    """Restore into `learn` everything `save_checkpoint` wrote."""
    set_training_state(learn, torch.load(path, map_location="cpu", weights_only=True))
