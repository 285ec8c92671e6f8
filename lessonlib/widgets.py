"""Small ipywidgets explorers for the notebooks.

In JupyterLab they are live. In batch runs (nbval, papermill: LESSONLIB_PROGRESS=0) they render once,
statically, at their default value, so stored outputs stay deterministic.
"""

from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display

from lessonlib.core import atomic_write, progress_enabled
from lessonlib.dropout import dropout


def widgets_live() -> bool:
    """Live widgets in a user's session; static output in batch runs."""
    return progress_enabled()


def _show(fig) -> None:
    display(fig)
    plt.close(fig)


def _dropout_figure(p: float, activations: torch.Tensor, seed: int):
    # The mask needs its own stream: drawn from the activations' seed, it would keep exactly the
    # units whose activation was below 1-p.
    dropped = dropout(activations, p, generator=torch.Generator().manual_seed(seed + 1))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    vmax = float(dropped.max()) if p < 1 else 1.0
    panels = ((axes[0], activations, "activations"), (axes[1], dropped, f"after dropout p={p:.2f}"))
    for ax, data, title in panels:
        im = ax.imshow(data.numpy(), cmap="viridis", vmin=0, vmax=vmax)
        ax.set(title=title, xlabel="unit of the layer", ylabel="example in the batch", xticks=[], yticks=[])
    fig.colorbar(im, ax=axes, shrink=0.8, label="activation")
    kept = dropped[dropped != 0]
    ratio = float(kept.mean() / activations[dropped != 0].mean()) if kept.numel() else float("nan")
    fig.suptitle(f"kept {kept.numel()}/{activations.numel()} units, each scaled by 1/(1-p) = {ratio:.2f}; "
                 f"mean {float(activations.mean()):.3f} -> {float(dropped.mean()):.3f}", fontsize=10)
    return fig


def dropout_explorer(p: float = 0.5, shape: tuple[int, int] = (8, 16), seed: int = 0):
    """A slider for p beside an activation map before and after inverted dropout."""
    activations = torch.rand(shape, generator=torch.Generator().manual_seed(seed))
    if not widgets_live():
        _show(_dropout_figure(p, activations, seed))
        return None
    import ipywidgets as w

    slider = w.FloatSlider(value=p, min=0.0, max=0.95, step=0.05, description="p", continuous_update=False)
    out = w.interactive_output(lambda p: _show(_dropout_figure(p, activations, seed)), {"p": slider})
    box = w.VBox([slider, out])
    box.add_class("lessonlib-dropout-explorer")
    return box


def _pca_2d(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows projected on their first two principal components, and each component's share of the
    variance."""
    centred = weights - weights.mean(0, keepdims=True)
    if centred.shape[1] < 2:
        return np.hstack([centred, np.zeros_like(centred)]), np.array([1.0, 0.0])
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T, (s[:2] ** 2) / max((s ** 2).sum(), 1e-300)


def _embedding_figure(name: str, weights: np.ndarray, labels: list, colour: list | None):
    xy, share = _pca_2d(np.asarray(weights, dtype=np.float64))
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    if colour is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=18)
    else:
        for value in sorted(set(colour), key=str):
            idx = [i for i, c in enumerate(colour) if c == value]
            ax.scatter(xy[idx, 0], xy[idx, 1], s=18, label=str(value))
        ax.legend(fontsize=8, title="colour")
    if len(labels) <= 60:
        for (x, y), label in zip(xy, labels, strict=True):
            ax.annotate(str(label), (x, y), fontsize=8, alpha=0.8)
    ax.set(title=f"{name}: learned embedding, first two principal components",
           xlabel=f"PC1 ({share[0]:.0%} of the variance)", ylabel=f"PC2 ({share[1]:.0%} of the variance)")
    return fig


def embedding_explorer(embeddings: dict[str, tuple], default: str | None = None):
    """Pick a categorical variable and see its embedding projected to 2-D (PCA).

    `embeddings` maps a variable name to `(weights, labels)` or `(weights, labels, colour)`:
    weights is (n_levels, dim), labels names each row, colour (optional) groups rows for colouring.
    """
    if not embeddings:
        raise ValueError("embedding_explorer needs at least one variable: got an empty dict")
    names = list(embeddings)
    default = default or names[0]

    def draw(name):
        weights, labels, *rest = embeddings[name]
        _show(_embedding_figure(name, weights, list(labels), list(rest[0]) if rest else None))

    if not widgets_live():
        draw(default)
        return None
    import ipywidgets as w

    pick = w.Dropdown(options=names, value=default, description="variable")
    box = w.VBox([pick, w.interactive_output(draw, {"name": pick})])
    box.add_class("lessonlib-embedding-explorer")
    return box


def save_embeddings(path, embeddings: dict[str, tuple]) -> Path:
    """Write `embedding_explorer`'s input to an .npz (no pickles), so a later session can explore it."""
    arrays = {}
    for name, (weights, labels, *colour) in embeddings.items():
        arrays[f"{name}/weights"] = np.asarray(weights, dtype=np.float64)
        arrays[f"{name}/labels"] = np.asarray([str(v) for v in labels])
        if colour:
            arrays[f"{name}/colour"] = np.asarray([str(v) for v in colour[0]])
    with atomic_write(path) as f:
        np.savez(f, **arrays)
    return Path(path)


def load_embeddings(path) -> dict[str, tuple]:
    """Read what `save_embeddings` wrote; a clear error names the notebook to run when it is missing."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run the notebook that trains the model first "
                                "(it saves the embeddings there)")
    with np.load(path, allow_pickle=False) as data:
        names = dict.fromkeys(key.rsplit("/", 1)[0] for key in data.files)
        return {n: tuple(data[f"{n}/{part}"] for part in ("weights", "labels", "colour")
                         if f"{n}/{part}" in data.files) for n in names}


def text_box(fn: Callable[[str], str], example: str, description: str = "text", button: str = "Run"):
    """A text box and a button: shows `fn(text)` for what the user typed. Static: shows `fn(example)`."""
    if not widgets_live():
        print(f"{description}: {example}\n-> {fn(example)}")
        return None
    import ipywidgets as w

    box_in = w.Textarea(value=example, description=description, layout=w.Layout(width="95%", height="4em"))
    run = w.Button(description=button, button_style="primary")
    out = w.Output()

    def on_click(_):
        with out:
            out.clear_output()
            print(fn(box_in.value))

    run.on_click(on_click)
    on_click(None)
    box = w.VBox([box_in, run, out])
    box.add_class("lessonlib-text-box")
    return box
