"""Gradient-boosted trees for Rossmann: the tree baseline of notebook 03 and the second model of the blend.

scikit-learn's HistGradientBoostingRegressor on the network's inputs (processor codes and scaled
continuous columns) plus the mean log(Sales) of the training rows per store, store x weekday, store x
Promo and store x Promo x weekday. The means matter: a tree can only treat codes with at most 255 levels
as categories, so Store (1,115 levels) would otherwise be an arbitrary number line.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

from lessonlib.tabular.model import TabularModel, embedded, rmspe_log_scale
from lessonlib.tabular.preprocess import TabularProcessor

STORE_GROUPS = (("Store",), ("Store", "DayOfWeek"), ("Store", "Promo"), ("Store", "Promo", "DayOfWeek"))
MAX_CATEGORIES = 255  # HistGradientBoostingRegressor's limit for a categorical feature
# The trees' weight in the blend with the networks, chosen on the full data's forecast split (trained
# before 2015-06-14, scored on the 48 days after), never on the lesson's window, which the benchmark
# scores; the sweep is in benchmarks/README.md.
BLEND_TREES_WEIGHT = 0.3


def group_means(train: pd.DataFrame, groups=STORE_GROUPS) -> list[pd.Series]:
    """Mean log(Sales) of `train` per group of key columns, one Series (indexed by the keys) per group."""
    log_sales = np.log(train["Sales"].to_numpy(dtype=np.float64))
    return [pd.Series(log_sales).groupby([train[k].to_numpy() for k in keys]).mean().rename_axis(list(keys))
            for keys in groups]


def lookup_means(df: pd.DataFrame, means: list[pd.Series]) -> np.ndarray:
    """The group means for each row of `df` (rows x groups); NaN for a group not seen in training,
    which the trees treat as missing."""
    cols = []
    for m in means:
        keys = pd.MultiIndex.from_frame(df[list(m.index.names)]) if m.index.nlevels > 1 else df[m.index.name]
        cols.append(m.reindex(keys).to_numpy(dtype=np.float64))
    return np.stack(cols, axis=1) if cols else np.zeros((len(df), 0))


@dataclass
class SalesTrees:
    """A fitted tree model: the network's processor, the group means, the trees and their RMSPE factor
    (log_scale, added to every log prediction as for the network). With `embeddings` (a trained
    TabularModel) the categories enter as that network's embedding vectors instead of codes."""
    proc: TabularProcessor
    means: list
    model: HistGradientBoostingRegressor
    log_scale: float = 0.0
    embeddings: TabularModel | None = None

    def inputs(self, df: pd.DataFrame) -> np.ndarray:
        """The trees' input matrix for `df`: category codes (or embedding vectors), scaled continuous
        columns, group means."""
        cats, conts = self.proc.transform(df)
        if self.embeddings is not None:
            cats = embedded(self.embeddings, cats)
        return np.hstack([cats, conts, lookup_means(df, self.means)])

    def predict_log(self, df: pd.DataFrame) -> np.ndarray:
        """Predicted log(Sales) for the rows of `df`."""
        return self.model.predict(self.inputs(df)) + self.log_scale


@dataclass(frozen=True)
class TreeConfig:
    """The trees' settings (scikit-learn's HistGradientBoostingRegressor) and what they read."""

    max_iter: int = 1000                   # boosting rounds
    max_leaf_nodes: int = 63
    learning_rate: float = 0.1
    groups: tuple = STORE_GROUPS           # key columns whose mean log(Sales) become inputs
    rmspe_scale: bool = True               # the RMSPE-optimal output factor, fitted on training rows


def fit_sales_trees(train: pd.DataFrame, proc: TabularProcessor, cfg: TreeConfig = TreeConfig(),
                    seed: int = 42, embeddings: TabularModel | None = None) -> SalesTrees:
    """Fit the trees of `cfg` on log(Sales) of `train` with the fitted `proc`; with `cfg.rmspe_scale`
    their output is shifted by `rmspe_log_scale` of their predictions on the training rows, as
    `fit_sales_model` does. With `embeddings` (a network trained on `proc`'s codes) the categories enter
    as its embedding vectors, plain numbers to split on, instead of codes split as categories."""
    if not proc.fitted:
        raise ValueError("fit_sales_trees needs a fitted TabularProcessor: call proc.fit(train) first")
    if embeddings is None:
        is_cat = [c <= MAX_CATEGORIES for c in proc.cardinalities]
    else:
        is_cat = [False] * sum(e.embedding_dim for e in embeddings.embeds)
    is_cat += [False] * (len(proc.cont_names) + len(cfg.groups))
    trees = SalesTrees(proc, group_means(train, cfg.groups), HistGradientBoostingRegressor(
        max_iter=cfg.max_iter, max_leaf_nodes=cfg.max_leaf_nodes, learning_rate=cfg.learning_rate,
        categorical_features=is_cat, early_stopping=False, random_state=seed), embeddings=embeddings)
    x, log_y = trees.inputs(train), np.log(train["Sales"].to_numpy(dtype=np.float64))
    trees.model.fit(x, log_y)
    if cfg.rmspe_scale:
        trees.log_scale = rmspe_log_scale(trees.model.predict(x), log_y)
    return trees


def blend(nn_log, trees_log, trees_weight: float) -> np.ndarray:
    """Weighted mean of two models' log(Sales) predictions (a weighted geometric mean of the Sales)."""
    if not 0 <= trees_weight <= 1:
        raise ValueError(f"trees_weight must lie in [0, 1], got {trees_weight}")
    nn_log, trees_log = np.asarray(nn_log, dtype=np.float64), np.asarray(trees_log, dtype=np.float64)
    return (1 - trees_weight) * nn_log + trees_weight * trees_log
