import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from lessonlib.plots import plot_curves, plot_vs_param


@pytest.fixture
def hist():
    rows = [{"p": p, "seed": s, "epoch": e, "loss": p + e + s} for p in (0.0, 0.5) for s in (0, 1)
            for e in (1, 2, 3)]
    return pd.DataFrame(rows)


def test_plot_curves_draws_the_mean_and_a_std_band_per_group(hist):
    ax = plot_curves(hist, "epoch", "loss", group="p", label="p={}")
    assert [line.get_label() for line in ax.lines] == ["p=0.0", "p=0.5"]
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [2.0, 3.0, 4.0])  # 0.5 + epoch + mean seed 0.5
    assert len(ax.collections) == 2  # one band per group
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    std = np.std([0, 1], ddof=1)
    assert band.min() == pytest.approx(1 + 0.5 - std) and band.max() == pytest.approx(3 + 0.5 + std)
    plt.close("all")


def test_plot_vs_param_averages_seeds_or_uses_given_errors(hist):
    last = hist[hist.epoch == 3]
    ax = plot_vs_param(last, "p", "loss")
    container = ax.containers[0]
    np.testing.assert_allclose(np.asarray(container.lines[0].get_ydata(), dtype=float), [3.5, 4.0])
    given = pd.DataFrame({"bin": [0, 1], "rate": [0.1, 0.3], "se": [0.01, 0.02]})
    ax = plot_vs_param(given, "bin", "rate", yerr="se")
    segments = ax.containers[0].lines[2][0].get_segments()
    assert [s[1][1] - s[0][1] for s in segments] == pytest.approx([0.02, 0.04])
    plt.close("all")


def test_missing_columns_are_named(hist):
    with pytest.raises(KeyError, match="acc"):
        plot_curves(hist, "epoch", "acc")
    with pytest.raises(KeyError, match="stderr"):
        plot_vs_param(hist, "p", "loss", yerr="stderr")


def test_unlabelled_names_axes_a_reader_cannot_read():
    import matplotlib.pyplot as plt

    from lessonlib.plots import unlabelled

    fig, axes = plt.subplots(1, 3, sharey=True)
    axes[0].plot([1, 2], [3, 4])
    axes[0].set(title="a", xlabel="epoch", ylabel="loss")
    axes[1].plot([1, 2], [3, 4])
    axes[1].set(title="b")                                  # y shared with a labelled axis; x bare
    axes[2].bar(["Mon", "Tue"], [1, 2])
    axes[2].set(title="c")                                  # x names its categories; y shared
    fig.colorbar(axes[0].scatter([1], [1], c=[1]), ax=axes[0])  # a colorbar needs no label here
    assert unlabelled(fig) == ["b: x"]
    axes[1].set_xlabel("epoch")
    assert unlabelled(fig) == []
    plt.close(fig)
    fig, ax = plt.subplots()
    ax.hist([1, 2, 2, 3])
    assert unlabelled(fig) == ["(untitled): x", "(untitled): y"]
    ax.set_axis_off()
    assert unlabelled(fig) == []
    plt.close(fig)


def test_plot_reliability_draws_the_diagonal_and_one_line_per_table():
    from lessonlib.calibration import reliability
    from lessonlib.plots import plot_reliability

    probs = np.array([[0.4, 0.6], [0.1, 0.9], [0.2, 0.8]])
    ax = plot_reliability({"before": reliability(probs, [1, 0, 1]), "after": reliability(probs, [1, 1, 1])})
    assert [line.get_label() for line in ax.lines] == ["calibrated", "before", "after"]
    assert ax.get_xlabel() and ax.get_ylabel()
    plt.close("all")
