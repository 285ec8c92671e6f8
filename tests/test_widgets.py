"""Widgets: live ipywidgets in a session, one static rendering in batch runs."""

import ipywidgets
import numpy as np
import pytest

from lessonlib import widgets


@pytest.fixture
def live(monkeypatch):
    monkeypatch.setenv("LESSONLIB_PROGRESS", "1")


@pytest.fixture
def static(monkeypatch):
    monkeypatch.setenv("LESSONLIB_PROGRESS", "0")


@pytest.fixture
def shown(monkeypatch):
    items = []
    monkeypatch.setattr(widgets, "display", items.append)
    return items


EMB = {"Day": (np.random.default_rng(0).normal(size=(7, 4)), list("MTWTFSS"), ["wd"] * 5 + ["we"] * 2),
       "One": (np.ones((3, 1)), ["a", "b", "c"])}


def test_text_box_static_prints_the_answer_for_the_example(static, capsys):
    assert widgets.text_box(str.upper, "great film") is None
    assert "GREAT FILM" in capsys.readouterr().out


def test_text_box_live_runs_the_function_on_click(live):
    box = widgets.text_box(str.upper, "great film")
    assert isinstance(box, ipywidgets.VBox)
    text, button, _ = box.children
    calls = []
    box2 = widgets.text_box(lambda t: calls.append(t) or t, "x")
    box2.children[0].value = "typed"
    box2.children[1].click()
    assert calls == ["x", "typed"]
    assert text.value == "great film" and button.description == "Run"


def test_embedding_explorer_static_draws_the_default_variable(static, shown):
    assert widgets.embedding_explorer(EMB) is None
    assert len(shown) == 1 and "Day" in shown[0].axes[0].get_title()


def test_embedding_explorer_handles_one_dimensional_embeddings(static, shown):
    widgets.embedding_explorer(EMB, default="One")
    assert "One" in shown[0].axes[0].get_title()


def test_embedding_explorer_live_offers_every_variable(live):
    box = widgets.embedding_explorer(EMB)
    assert list(box.children[0].options) == ["Day", "One"]


def test_embedding_explorer_needs_a_variable():
    with pytest.raises(ValueError, match="at least one"):
        widgets.embedding_explorer({})


def test_pca_projection_keeps_the_main_direction():
    rng = np.random.default_rng(1)
    line = np.outer(np.linspace(-1, 1, 20), [3.0, 4.0, 0.0]) + rng.normal(scale=1e-3, size=(20, 3))
    xy, share = widgets._pca_2d(line)
    assert np.abs(xy[:, 0]).max() == pytest.approx(5.0, rel=1e-2)
    assert np.abs(xy[:, 1]).max() < 0.01
    assert share[0] > 0.999 and share[1] < 1e-3


def test_dropout_explorer_static_shows_kept_units_scaled(static, shown):
    assert widgets.dropout_explorer(p=0.25, shape=(4, 5)) is None
    (fig,) = shown
    assert "1/(1-p) = 1.33" in fig._suptitle.get_text()


def test_dropout_explorer_live_has_a_p_slider(live):
    box = widgets.dropout_explorer(p=0.5)
    slider = box.children[0]
    assert isinstance(slider, ipywidgets.FloatSlider) and slider.value == 0.5 and slider.max < 1


def test_dropout_explorer_mask_is_independent_of_the_activations(static, shown):
    # A mask drawn from the activations' own random stream keeps only small activations.
    widgets.dropout_explorer(p=0.5, shape=(20, 20), seed=0)
    title = shown[0]._suptitle.get_text()
    before, after = (float(v) for v in title.rsplit("mean ", 1)[1].split(" -> "))
    assert abs(after - before) < 0.1, title


def test_embeddings_round_trip_through_npz(tmp_path):
    path = widgets.save_embeddings(tmp_path / "sub" / "emb.npz", EMB)
    back = widgets.load_embeddings(path)
    assert list(back) == ["Day", "One"]
    np.testing.assert_array_equal(back["Day"][0], EMB["Day"][0])
    assert list(back["Day"][1]) == list("MTWTFSS") and list(back["Day"][2]) == ["wd"] * 5 + ["we"] * 2
    assert len(back["One"]) == 2


def test_load_embeddings_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the notebook"):
        widgets.load_embeddings(tmp_path / "nope.npz")
