"""The tree model: per-store group means, the fitted trees and their RMSPE factor, the blend."""

import math

import numpy as np
import pandas as pd
import pytest

from lessonlib.tabular.model import TabularConfig, TabularModel, embedded, exp_rmspe, rmspe_log_scale
from lessonlib.tabular.preprocess import TabularProcessor
from lessonlib.tabular.trees import TreeConfig, blend, fit_sales_trees, group_means, lookup_means


def sales_table(n_days=120, stores=(1, 2, 3), seed=0):
    """Daily sales with a store level, a weekday pattern, a promo lift and 5% noise."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2014-01-01", periods=n_days)
    df = pd.DataFrame([(s, d) for s in stores for d in dates], columns=["Store", "Date"])
    df["DayOfWeek"] = df["Date"].dt.day_of_week + 1
    df["Promo"] = ((df["Date"].dt.day // 7) % 2).astype(int)
    df["Temp"] = rng.normal(15, 5, len(df))
    level = df["Store"].map({s: 1000.0 * (i + 1) for i, s in enumerate(stores)})
    noise = np.exp(rng.normal(0, 0.05, len(df)))
    df["Sales"] = level * (1 + 0.1 * df["DayOfWeek"]) * (1 + 0.3 * df["Promo"]) * noise
    return df


def test_group_means_and_lookup():
    df = pd.DataFrame({"Store": [1, 1, 2], "Promo": [0, 1, 0], "Sales": [100.0, 400.0, 50.0]})
    by_store, by_store_promo = group_means(df, [("Store",), ("Store", "Promo")])
    assert by_store[1] == pytest.approx((math.log(100) + math.log(400)) / 2)
    assert by_store_promo[(1, 1)] == pytest.approx(math.log(400))
    new = pd.DataFrame({"Store": [2, 3], "Promo": [0, 0]})  # store 3 was never seen
    got = lookup_means(new, [by_store, by_store_promo])
    assert got.shape == (2, 2)
    np.testing.assert_allclose(got[0], [math.log(50), math.log(50)])
    assert np.isnan(got[1]).all()


def test_trees_learn_the_store_weekday_and_promo_pattern():
    df = sales_table()
    fit, valid = df[df["Date"] < "2014-04-01"], df[df["Date"] >= "2014-04-01"]
    proc = TabularProcessor(["Store", "DayOfWeek", "Promo"], ["Temp"]).fit(fit)
    trees = fit_sales_trees(fit, proc, TreeConfig(max_iter=100, max_leaf_nodes=15))
    log_y = np.log(valid["Sales"].to_numpy())
    got = exp_rmspe(trees.predict_log(valid), log_y).item()
    flat = exp_rmspe(np.full(len(valid), np.log(fit["Sales"]).mean()), log_y).item()
    assert got < 0.1 < flat  # noise is 5%; one level for all would be off by a factor of ~2


def test_trees_rmspe_factor_is_fitted_on_training_rows():
    df = sales_table(n_days=60)
    proc = TabularProcessor(["Store", "DayOfWeek", "Promo"], ["Temp"]).fit(df)
    plain = fit_sales_trees(df, proc, TreeConfig(max_iter=20, rmspe_scale=False))
    scaled = fit_sales_trees(df, proc, TreeConfig(max_iter=20))
    assert plain.log_scale == 0.0
    log_y = np.log(df["Sales"].to_numpy())
    assert scaled.log_scale == pytest.approx(rmspe_log_scale(plain.predict_log(df), log_y))
    np.testing.assert_allclose(scaled.predict_log(df), plain.predict_log(df) + scaled.log_scale)


def test_trees_need_a_fitted_processor():
    with pytest.raises(ValueError, match="fitted TabularProcessor"):
        fit_sales_trees(sales_table(n_days=10), TabularProcessor(["Store"], ["Temp"]))


def test_blend_is_a_weighted_mean_of_logs():
    np.testing.assert_allclose(blend([1.0, 2.0], [3.0, 4.0], 0.25), [1.5, 2.5])
    np.testing.assert_allclose(blend([1.0], [3.0], 0.0), [1.0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        blend([1.0], [3.0], 1.5)


def test_embedded_replaces_each_code_by_its_embedding_row():
    net = TabularModel([4, 3], 0, TabularConfig(layers=(4,), ps=(0.0,)), sizes=[2, 5])
    cats = np.array([[1, 2], [3, 0]])
    got = embedded(net, cats)
    assert got.shape == (2, 7) and got.dtype == np.float64
    w0, w1 = net.embeds[0].weight.detach().double().numpy(), net.embeds[1].weight.detach().double().numpy()
    np.testing.assert_allclose(got, np.hstack([w0[[1, 3]], w1[[2, 0]]]))


def test_trees_on_embedding_vectors_take_them_as_numbers_and_learn():
    df = sales_table()
    fit, valid = df[df["Date"] < "2014-04-01"], df[df["Date"] >= "2014-04-01"]
    proc = TabularProcessor(["Store", "DayOfWeek", "Promo"], ["Temp"]).fit(fit)
    net = TabularModel(proc.cardinalities, 1, TabularConfig(layers=(4,), ps=(0.0,)))
    trees = fit_sales_trees(fit, proc, TreeConfig(max_iter=100, max_leaf_nodes=15), embeddings=net)
    width = sum(e.embedding_dim for e in net.embeds)
    assert trees.inputs(valid).shape[1] == width + 1 + 4  # vectors, Temp, the four group means
    assert not any(trees.model.categorical_features)  # vectors are split as numbers
    got = exp_rmspe(trees.predict_log(valid), np.log(valid["Sales"].to_numpy())).item()
    assert got < 0.1  # random vectors still tell the codes apart; the group means carry the levels
