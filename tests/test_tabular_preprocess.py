"""Categorify / fill / normalise: fitted on training rows, applied unchanged elsewhere."""

import numpy as np
import pandas as pd
import pytest

from lessonlib.tabular.preprocess import TabularProcessor


@pytest.fixture
def train():
    return pd.DataFrame({"Store": [3, 1, 2, 1], "Type": ["b", "a", None, "a"],
                         "Dist": [10.0, np.nan, 30.0, 50.0], "Temp": [1.0, 2.0, 3.0, 4.0]})


def fitted(train):
    return TabularProcessor(["Store", "Type"], ["Dist", "Temp"]).fit(train)


def test_codes_are_sorted_training_values_from_one(train):
    proc = fitted(train)
    cats, _ = proc.transform(train)
    assert cats[:, 0].tolist() == [3, 1, 2, 1]            # 1 -> 1, 2 -> 2, 3 -> 3
    assert cats[:, 1].tolist() == [2, 1, 0, 1]            # missing -> 0
    assert proc.cardinalities == [4, 3, 3]                # + Dist_na indicator (3 codes)
    assert proc.all_cat_names == ["Store", "Type", "Dist_na"]


def test_unseen_categories_map_to_zero(train):
    proc = fitted(train)
    cats, _ = proc.transform(pd.DataFrame({"Store": [9, 2], "Type": ["z", "b"], "Dist": [1.0, 2.0],
                                           "Temp": [0.0, 0.0]}))
    assert cats[:, 0].tolist() == [0, 2] and cats[:, 1].tolist() == [0, 2]


def test_continuous_fill_with_training_median_and_standardise(train):
    proc = fitted(train)
    cats, conts = proc.transform(train)
    assert proc.medians["Dist"] == 30.0
    dist = np.array([10.0, 30.0, 30.0, 50.0])
    np.testing.assert_allclose(conts[:, 0], (dist - dist.mean()) / dist.std(), rtol=1e-6)
    np.testing.assert_allclose(conts.mean(0), 0, atol=1e-6)
    assert cats[:, 2].tolist() == [2, 1, 2, 2]            # Dist_na: 1 = was missing


def test_test_nans_use_training_fill_not_test_statistics(train):
    proc = fitted(train)
    test = pd.DataFrame({"Store": [1, 1], "Type": ["a", "a"], "Dist": [np.nan, 1000.0],
                         "Temp": [np.nan, 9.0]})
    cats, conts = proc.transform(test)
    assert conts[0, 0] == pytest.approx((30.0 - proc.means["Dist"]) / proc.stds["Dist"])
    assert conts[0, 1] == pytest.approx((2.5 - 2.5) / proc.stds["Temp"])  # Temp median 2.5, mean 2.5
    assert cats[:, 2].tolist() == [1, 2]
    assert not np.isnan(conts).any()


def test_save_load_round_trip(train, tmp_path):
    proc = fitted(train)
    again = TabularProcessor.load(proc.save(tmp_path / "proc.json"))
    for a, b in zip(proc.transform(train), again.transform(train), strict=True):
        np.testing.assert_array_equal(a, b)
    assert again.cardinalities == proc.cardinalities


def test_float_coded_categories_survive_json(tmp_path):
    df = pd.DataFrame({"Months": [1.0, 24.0, np.nan], "x": [1.0, 2.0, 3.0]})
    proc = TabularProcessor(["Months"], ["x"]).fit(df)
    again = TabularProcessor.load(proc.save(tmp_path / "p.json"))
    assert again.transform(df)[0][:, 0].tolist() == [1, 2, 0]


def test_errors_say_what_is_wrong(train):
    with pytest.raises(RuntimeError, match="fit"):
        TabularProcessor(["Store"], ["Dist"]).transform(train)
    with pytest.raises(KeyError, match="Missing"):
        TabularProcessor(["Missing"], []).fit(train)
    with pytest.raises(ValueError, match="both"):
        TabularProcessor(["Store"], ["Store"])
    with pytest.raises(ValueError, match="entirely missing"):
        TabularProcessor([], ["Dist"]).fit(train.assign(Dist=np.nan))
