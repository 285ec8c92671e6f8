"""Plot helpers: curves per group with mean ± std bands over seeds, a metric against a parameter with
error bars (both from tidy DataFrames: one row per run, or per run and epoch), and a reliability
diagram (from `lessonlib.calibration.reliability` tables). Each returns the matplotlib Axes it drew on.
"""

import matplotlib.pyplot as plt
import pandas as pd


def _check_columns(df: pd.DataFrame, *columns) -> None:
    missing = [c for c in columns if c is not None and c not in df.columns]
    if missing:
        raise KeyError(f"column(s) {missing} not in the DataFrame; it has {list(df.columns)}")


UNLABELLED_MARKER = "UNLABELLED AXES"  # how the refresh's figure check reports `unlabelled` on stderr


def _is_text(labels) -> bool:
    """Tick labels that name categories (words), not numbers or dates the axis label must explain."""
    texts = [t.get_text().replace("\u2212", "-") for t in labels if t.get_text()]
    return bool(texts) and all(not t.replace(".", "", 1).replace("-", "", 1).isdigit() for t in texts)


def unlabelled(fig) -> list[str]:
    """Each visible axis of `fig` a reader cannot read alone, as "title: x" or "title: y": no label of its
    own, none on an axes it is shared with, and tick labels that are numbers (words name themselves).
    Empty when every axis is labelled. Colorbars and hidden axes are skipped."""
    missing = []
    for ax in fig.axes:
        if not ax.get_visible() or not ax.axison or hasattr(ax, "_colorbar"):
            continue
        for name, axis, shared in (("x", ax.xaxis, ax.get_shared_x_axes()),
                                   ("y", ax.yaxis, ax.get_shared_y_axes())):
            if not axis.get_visible() or axis.get_label_text():
                continue
            if any(getattr(o, f"get_{name}label")() for o in shared.get_siblings(ax)):
                continue
            if _is_text(axis.get_ticklabels()):
                continue
            missing.append(f"{ax.get_title() or '(untitled)'}: {name}")
    return missing


def new_axes():
    """Fresh axes of the size every lessonlib plot uses when not given some."""
    return plt.subplots(figsize=(6, 4))[1]


def plot_curves(df: pd.DataFrame, x: str, y: str, group: str | None = None, ax=None, label: str = "{}"):
    """One line per value of `group`: the mean of `y` at each `x` over the rows sharing them (the seeds),
    with a band of ± one standard deviation. `label` formats the group value (e.g. "p={}")."""
    _check_columns(df, x, y, group)
    ax = ax if ax is not None else new_axes()
    groups = [(None, df)] if group is None else list(df.groupby(group, sort=True))
    cmap = plt.get_cmap("viridis")
    for i, (value, part) in enumerate(groups):
        stats = part.groupby(x)[y].agg(["mean", "std"]).fillna(0.0)
        color = cmap(i / max(len(groups) - 1, 1)) if group else None
        (line,) = ax.plot(stats.index, stats["mean"], color=color,
                          label=label.format(value) if group else label.format(y))
        ax.fill_between(stats.index, stats["mean"] - stats["std"], stats["mean"] + stats["std"],
                        color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set(xlabel=x, ylabel=y)
    return ax


def plot_vs_param(df: pd.DataFrame, x: str, y: str, group: str | None = None, yerr: str | None = None,
                  ax=None, label: str = "{}"):
    """`y` against the parameter `x` with error bars, one line per value of `group`.

    Without `yerr`, the rows sharing an x (the seeds) are averaged and the bars are ± one standard
    deviation; with `yerr`, each row is one point and that column gives its bar (e.g. a standard error)."""
    _check_columns(df, x, y, group, yerr)
    ax = ax if ax is not None else new_axes()
    groups = [(None, df)] if group is None else list(df.groupby(group, sort=True))
    for value, part in groups:
        if yerr is None:
            stats = part.groupby(x)[y].agg(["mean", "std"]).fillna(0.0)
            xs, ys, es = stats.index, stats["mean"], stats["std"]
        else:
            part = part.sort_values(x)
            xs, ys, es = part[x], part[y], part[yerr]
        ax.errorbar(xs, ys, yerr=es, label=label.format(value) if group else label.format(y), marker="o",
                    capsize=3)
    ax.set(xlabel=x, ylabel=y)
    return ax


def plot_reliability(tables: dict, ax=None):
    """A reliability diagram: for each named `reliability` table, accuracy against mean confidence per
    bin (dot area ~ answers in the bin); on the diagonal, a probability means what it says."""
    ax = ax if ax is not None else new_axes()
    lowest = min(float(t["from"].min()) for t in tables.values())
    ax.plot([lowest, 1], [lowest, 1], color="gray", ls="--", lw=1, label="calibrated")
    for name, table in tables.items():
        _check_columns(table, "confidence", "accuracy", "count")
        area = 300 * table["count"] / table["count"].sum()
        line, = ax.plot(table["confidence"], table["accuracy"], lw=1, label=name)
        ax.scatter(table["confidence"], table["accuracy"], s=area, color=line.get_color(), alpha=0.7)
    ax.set(xlabel="confidence (mean over the bin)", ylabel="accuracy in the bin")
    return ax
