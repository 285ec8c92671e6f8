"""Turn a feature table into model inputs: category codes and standardised continuous columns.

Fit on the training rows only; the fitted processor is saved as JSON and applied unchanged to
validation and test rows.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd


def _plain(value):
    """A JSON-friendly python scalar for a numpy/pandas value."""
    return value.item() if hasattr(value, "item") else value


class TabularProcessor:
    """Categorify, fill and normalise.

    - categorical column: its training values, sorted, get codes 1..n; code 0 is kept for a value not
      seen in training and for missing values;
    - continuous column: missing values get the training median, and if the column had missing values
      in training an extra categorical column `<name>_na` (1 = was missing, 2 = was present) is added;
      then (x - training mean) / training std.
    """

    def __init__(self, cat_names, cont_names):
        overlap = set(cat_names) & set(cont_names)
        if overlap:
            raise ValueError(f"columns {sorted(overlap)} are listed as both categorical and continuous")
        self.cat_names, self.cont_names = list(cat_names), list(cont_names)
        self.categories, self.medians, self.means, self.stds = {}, {}, {}, {}
        self.na_names = []

    @property
    def fitted(self) -> bool:
        return bool(self.categories or self.means)

    def _check_columns(self, df: pd.DataFrame):
        missing = [c for c in self.cat_names + self.cont_names if c not in df.columns]
        if missing:
            raise KeyError(f"the table lacks column(s) {missing} that this processor uses")

    def fit(self, df: pd.DataFrame) -> "TabularProcessor":
        """Learn categories, medians, means and stds from the training rows `df`."""
        self._check_columns(df)
        if len(df) == 0:
            raise ValueError("cannot fit a TabularProcessor on an empty table")
        for c in self.cat_names:
            self.categories[c] = [_plain(v) for v in np.sort(df[c].dropna().unique())]
        self.na_names = []
        for c in self.cont_names:
            x = pd.to_numeric(df[c], errors="raise").astype("float64")
            if x.isna().all():
                raise ValueError(f"continuous column {c!r} is entirely missing in the training rows")
            if x.isna().any():
                self.na_names.append(f"{c}_na")
            self.medians[c] = float(x.median())
            x = x.fillna(self.medians[c])
            self.means[c] = float(x.mean())
            std = float(x.std(ddof=0))
            self.stds[c] = std if std > 0 else 1.0
        return self

    @property
    def all_cat_names(self) -> list:
        """Categorical columns, then the `_na` indicators, in the order of `transform`'s codes."""
        return self.cat_names + self.na_names

    @property
    def cardinalities(self) -> list:
        """Number of codes per categorical input (training categories + 1 for code 0)."""
        return [len(self.categories[c]) + 1 for c in self.cat_names] + [3] * len(self.na_names)

    def codes(self, df: pd.DataFrame, col: str) -> np.ndarray:
        """Codes of one categorical column: 1..n for training values, 0 for unseen or missing."""
        codes = pd.Index(self.categories[col]).get_indexer(df[col])  # -1 for unseen or missing
        return codes.astype(np.int64) + 1

    def transform(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(cats int64 [rows, n_cat + n_na], conts float32 [rows, n_cont]) for any rows."""
        if not self.fitted:
            raise RuntimeError("call fit(train_df) (or TabularProcessor.load) before transform")
        self._check_columns(df)
        cats = [self.codes(df, c) for c in self.cat_names]
        conts = []
        for c in self.cont_names:
            x = pd.to_numeric(df[c], errors="raise").astype("float64")
            if f"{c}_na" in self.na_names:
                cats.append(np.where(x.isna().to_numpy(), 1, 2).astype(np.int64))
            x = x.fillna(self.medians[c]).to_numpy()
            conts.append((x - self.means[c]) / self.stds[c])
        n = len(df)
        cat_arr = np.stack(cats, axis=1) if cats else np.zeros((n, 0), np.int64)
        cont_arr = np.stack(conts, axis=1).astype(np.float32) if conts else np.zeros((n, 0), np.float32)
        return cat_arr, cont_arr

    def state(self) -> dict:
        return {"cat_names": self.cat_names, "cont_names": self.cont_names, "categories": self.categories,
                "na_names": self.na_names, "medians": self.medians, "means": self.means, "stds": self.stds}

    def save(self, path) -> Path:
        """Write the fitted processing as JSON."""
        if not self.fitted:
            raise RuntimeError("nothing to save: the processor is not fitted")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.state(), indent=1))
        return path

    @classmethod
    def load(cls, path) -> "TabularProcessor":
        """A processor restored from `save`, ready to transform."""
        state = json.loads(Path(path).read_text())
        proc = cls(state["cat_names"], state["cont_names"])
        for key in ("categories", "na_names", "medians", "means", "stds"):
            setattr(proc, key, state[key])
        return proc
