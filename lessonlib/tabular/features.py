"""Rossmann features: date parts, store features, days since/until events and long closures, the model's
columns and the train/validation split. The tables are read and joined in `joins.py`.

Everything is vectorised (merges, numpy searches and cumulative sums over rows sorted by store and
date); there is no per-row Python loop.
"""

import numpy as np
import pandas as pd

from lessonlib.tabular.joins import describe_keys, join_tables, read_tables

# The columns each CSV must have (extra columns are kept where a table is joined whole).
EVENTS = ("SchoolHoliday", "StateHoliday", "Promo")


def add_date_parts(df: pd.DataFrame, col: str = "Date") -> pd.DataFrame:
    """Year, Month, Week (ISO), Day, Dayofyear, month/quarter/year start/end flags and Elapsed (days
    since 1970), computed once per distinct date and spread to the rows."""
    days = df[col].unique()
    d = pd.DataFrame({col: days})
    dt = d[col].dt
    d["Year"], d["Month"], d["Week"] = dt.year, dt.month, dt.isocalendar().week.astype("int64").values
    d["Day"], d["Dayofyear"] = dt.day, dt.day_of_year
    for flag in ("month_start", "month_end", "quarter_start", "quarter_end", "year_start", "year_end"):
        d[f"Is_{flag}"] = getattr(dt, f"is_{flag}")
    d["Elapsed"] = (d[col] - pd.Timestamp("1970-01-01")).dt.days
    return df.merge(d, on=col, how="left", validate="many_to_one")


def add_store_features(df: pd.DataFrame) -> pd.DataFrame:
    """CompetitionMonthsOpen (0..24, NaN when the opening date is unknown), Promo2Weeks (0..25 since
    Promo2 started, NaN for stores without Promo2) and IsPromo2Month (the month is one of the store's
    PromoInterval restart months). The caps, as in the lesson, make "open for years" one category."""
    out = df.copy(deep=False)  # copy-on-write: new columns do not touch df
    months = ((out["Year"] - out["CompetitionOpenSinceYear"]) * 12
              + (out["Month"] - out["CompetitionOpenSinceMonth"]))
    out["CompetitionMonthsOpen"] = months.clip(0, 24)
    p2 = out["Promo2"] == 1
    codes, keys = pd.factorize(out["Promo2SinceYear"] * 100 + out["Promo2SinceWeek"])  # NaN -> -1
    starts = pd.to_datetime([f"{int(k) // 100}-W{int(k) % 100:02d}-1" for k in keys], format="%G-W%V-%u")
    since = pd.Series(np.append(starts.to_numpy(), np.datetime64("NaT"))[codes], index=out.index)
    weeks = (out["Date"] - since).dt.days // 7
    out["Promo2Weeks"] = weeks.clip(0, 25).where(p2)
    out["IsPromo2Month"] = p2 & _month_in_interval(out["Month"], out["PromoInterval"])
    return out


MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sept", "Oct", "Nov", "Dec"]


def _month_in_interval(month: pd.Series, interval: pd.Series) -> np.ndarray:
    """Vectorised `MONTHS[month - 1] in interval.split(',')`: one 12-month mask per distinct interval."""
    codes, intervals = pd.factorize(interval.fillna(""))
    masks = np.array([[m in i.split(",") for m in MONTHS] for i in intervals], dtype=bool).reshape(-1, 12)
    return masks[codes, month.to_numpy() - 1]


def add_event_features(df: pd.DataFrame, events=EVENTS, window: int = 7) -> pd.DataFrame:
    """For each event column (non-zero = event day), per store: days since the last event (`After<e>`,
    0 on the day), days until the next (`Before<e>`), NaN where there is none in the data; and the number
    of event days in the `window` days up to and including the day (`<e>_bw`) and from it on (`<e>_fw`).

    Windows are over calendar days, so gaps in a store's dates (180 stores lack 2014-07..12) count as
    no event. Rows must have unique (Store, Date)."""
    order, s, key, store_lo, span = _store_day_keys(df, events, window, "add_event_features")
    new = {}
    for e in events:
        col = s[e]
        numeric = pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)
        hit = col.to_numpy() != 0 if numeric else (col != "0").to_numpy()
        since, until, has_last, has_next = _since_and_until(hit, key, store_lo, span)
        new[f"After{e}"] = np.where(has_last, since, np.nan)
        new[f"Before{e}"] = np.where(has_next, until, np.nan)
        csum = np.concatenate([[0], np.cumsum(hit)])
        lo = np.searchsorted(key, key - (window - 1), side="left")
        hi = np.searchsorted(key, key + (window - 1), side="right")
        idx = np.arange(len(key))
        new[f"{e}_bw"] = csum[idx + 1] - csum[lo]
        new[f"{e}_fw"] = csum[hi] - csum[idx]
    return _with_columns(df, new, order)


def _since_and_until(hit: np.ndarray, key: np.ndarray, store_lo: np.ndarray, span: int):
    """For rows sorted by `key` (see `_store_day_keys`): days since the last `hit` row at or before each
    row and until the next at or after it, and whether that row is in the same store at all."""
    last = np.maximum.accumulate(np.where(hit, key, -1))
    nxt = np.minimum.accumulate(np.where(hit, key, np.iinfo(np.int64).max)[::-1])[::-1]
    return key - last, nxt - key, last >= store_lo, nxt < store_lo + span


def _store_day_keys(df: pd.DataFrame, columns, pad: int, who: str):
    """Rows sorted by store then date: (order, sorted rows, key, store_lo, span). key = store * span +
    day number (+ pad) is strictly increasing, so a store's days lie in [store_lo, store_lo + span)."""
    order = np.lexsort((df["Date"].to_numpy(), df["Store"].to_numpy()))
    s = df[["Store", "Date", *columns]].iloc[order]
    day = ((s["Date"] - pd.Timestamp("1970-01-01")).dt.days).to_numpy(np.int64)
    span = int(day.max() - day.min()) + 2 * pad + 2
    key = s["Store"].to_numpy(np.int64) * span + (day - day.min()) + pad
    if np.any(np.diff(key) <= 0):
        dup = s.loc[s.duplicated(["Store", "Date"], keep=False), ["Store", "Date"]].drop_duplicates()
        raise ValueError(f"{who}: duplicated (Store, Date) rows: {describe_keys(dup)}")
    return order, s, key, s["Store"].to_numpy(np.int64) * span, span


def _with_columns(df: pd.DataFrame, new: dict, order: np.ndarray) -> pd.DataFrame:
    """A shallow copy of df with the columns in `new` (computed in `order`) put back in df's row order."""
    out = df.copy(deep=False)  # copy-on-write: new columns do not touch df
    for name, values in new.items():
        back = np.empty_like(values)
        back[order] = values
        out[name] = back
    return out


def add_closure_features(df: pd.DataFrame, min_days: int = 3, cap: int = 30) -> pd.DataFrame:
    """Per store, around its long closures (at least `min_days` consecutive calendar days with Open == 0:
    longer than a Sunday or a one-day holiday, e.g. Christmas or a refurbishment): `AfterLongClosure`,
    days since the last such closure ended (1 = the day it reopened), and `BeforeLongClosure`, days until
    the next one starts (1 = its last open day). Both are capped at `cap`, which also stands for "none
    within cap days" and for the closed days themselves.

    Stores sell far more for about ten days after reopening and less on the last day before closing
    (notebook 02). A missing Open (a few test rows) counts as open; days missing from the data (180
    stores lack 2014-07..12) break a closure instead of extending it. min_days=3 was chosen over 5 on
    the full data (benchmarks/README.md)."""
    order, s, key, store_lo, span = _store_day_keys(df, ["Open"], 0, "add_closure_features")
    closed = s["Open"].fillna(1).to_numpy() == 0
    follows = np.r_[False, closed[:-1] & (np.diff(key) == 1)]  # closed, and so was the day before
    run = np.cumsum(closed & ~follows) * closed  # closure run number, 0 on open days
    long_run = closed & (np.bincount(run)[run] >= min_days)
    since, until, has_last, has_next = _since_and_until(long_run, key, store_lo, span)
    after = np.where(has_last & ~long_run, since, cap)
    before = np.where(has_next & ~long_run, until, cap)
    return _with_columns(df, {"AfterLongClosure": np.minimum(after, cap),
                              "BeforeLongClosure": np.minimum(before, cap)}, order)


def build(folder) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read, join and featurise train and test together (so event features see both sides of the
    train/test boundary); returns (train, test), each sorted by Date then Store."""
    tables = read_tables(folder)
    train, test = tables["train"], tables["test"]
    both = pd.concat([train.assign(Id=np.nan), test], ignore_index=True)
    both = join_tables(both, tables)
    both = add_date_parts(both)
    both = add_store_features(both)
    both = add_event_features(both)
    both = add_closure_features(both)
    is_test = both["Id"].notna()
    out = []
    for part in (both[~is_test].drop(columns="Id"), both[is_test].drop(columns=["Sales", "Customers"])):
        out.append(part.sort_values(["Date", "Store"], kind="stable").reset_index(drop=True))
    out[1]["Id"] = out[1]["Id"].astype("int64")
    return out[0], out[1]


# Which columns feed the model, as the lesson chose them: small integer-like fields are categories
# (the network learns an embedding for each value), real-valued measures are continuous.
CAT_NAMES = ["Store", "DayOfWeek", "Year", "Month", "Day", "StateHoliday", "CompetitionMonthsOpen",
             "Promo2Weeks", "StoreType", "Assortment", "PromoInterval", "CompetitionOpenSinceYear",
             "Promo2SinceYear", "State", "Week", "Events", "Promo_fw", "Promo_bw", "StateHoliday_fw",
             "StateHoliday_bw", "SchoolHoliday_fw", "SchoolHoliday_bw", "IsPromo2Month", "AfterLongClosure",
             "BeforeLongClosure"]
CONT_NAMES = ["CompetitionDistance", "Max_TemperatureC", "Mean_TemperatureC", "Min_TemperatureC",
              "Max_Humidity", "Mean_Humidity", "Min_Humidity", "Max_Wind_SpeedKm_h", "Mean_Wind_SpeedKm_h",
              "CloudCover", "trend", "trend_DE", "AfterStateHoliday", "BeforeStateHoliday", "AfterPromo",
              "BeforePromo", "AfterSchoolHoliday", "BeforeSchoolHoliday", "Promo", "SchoolHoliday"]

LESSON_VALID = ("2014-08-01", "2014-09-17")    # the lesson's validation window; train on all other dates
FORECAST_VALID = ("2015-06-14", "2015-07-31")  # the last 48 days; train only on earlier dates


def sales_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows the model learns from and is scored on: open days with Sales > 0."""
    return df[(df["Open"] == 1) & (df["Sales"] > 0)]


def log_sales_deviation(rows: pd.DataFrame) -> pd.Series:
    """log(Sales) minus the median log(Sales) of the same store, day of week and Promo status: 0 is an
    ordinary day for that store, +0.7 about twice its usual sales."""
    log_sales = np.log(rows["Sales"])
    median = log_sales.groupby([rows["Store"], rows["DayOfWeek"], rows["Promo"]]).transform("median")
    return log_sales - median


def drop_outliers(train: pd.DataFrame, max_log_dev: float = 0.7, after_closure: int = 14,
                  closure_max_log_dev: float = 1.4) -> pd.DataFrame:
    """Training rows without the days whose log(Sales) is more than `max_log_dev` away from the median
    of the same store, day of week and Promo (0.7: a factor of 2 either way), e.g. a store open for
    part of a day. The first `after_closure` days after a long closure may deviate up to
    `closure_max_log_dev` (1.4: a factor of 4): stores reopen to far higher sales, consistently, and
    `AfterLongClosure` explains it (after_closure=0: no allowance). The days before a closure get none:
    some stores run a clearance sale then and most do not, which no feature tells apart. Apply to
    training rows only; validation stays untouched."""
    if max_log_dev <= 0:
        raise ValueError(f"max_log_dev must be positive, got {max_log_dev}")
    dev = log_sales_deviation(train).abs()
    keep = dev <= max_log_dev
    if after_closure:
        if "AfterLongClosure" not in train.columns:
            raise KeyError("drop_outliers: no column AfterLongClosure; add it with add_closure_features "
                           "(features.build does) or pass after_closure=0")
        keep |= (train["AfterLongClosure"] <= after_closure) & (dev <= closure_max_log_dev)
    return train[keep]


def split(df: pd.DataFrame, window, forecast: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, valid): valid is the dates in `window` (inclusive); train is every other date, or with
    `forecast` only the dates before the window (nothing from the future)."""
    lo, hi = pd.Timestamp(window[0]), pd.Timestamp(window[1])
    in_window = df["Date"].between(lo, hi)
    before = df["Date"] < lo
    return df[before if forecast else ~in_window], df[in_window]
