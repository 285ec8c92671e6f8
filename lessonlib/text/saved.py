"""Reading the model files the notebooks save (the LM of 04, the classifier of 05), with errors that name
the file, say what is wrong with it and how to get a good one back."""

from pathlib import Path

import torch


class SavedModelError(ValueError):
    """A saved model file that cannot be used: truncated, corrupted, or some other program's file."""


def read_saved(path, required: tuple[str, ...], what: str, remedy: str) -> dict:
    """The dict `torch.save` wrote at `path`, read on the CPU without running pickled code
    (`weights_only`). A missing file raises FileNotFoundError; a file torch cannot read, or one without
    the `required` entries, raises SavedModelError naming `path`, `what` it should be and the `remedy`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no {what} at {path}: {remedy}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError... by what is broken
        reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise SavedModelError(f"{path} is not a readable {what}: it is truncated, corrupted or not a torch "
                              f"file ({type(err).__name__}: {reason}). Delete it, then {remedy}") from err
    missing = [key for key in required if not isinstance(blob, dict) or key not in blob]
    if missing:
        raise SavedModelError(f"{path} is a torch file but not a {what} (no {', '.join(missing)}). Delete it "
                              f"(or pass the right file), then {remedy}")
    return blob
