"""Rossmann's tables: each CSV read with its columns checked, and the train/test rows joined with the
store, state, weather and Google Trends tables, every join checked to keep, match and not duplicate rows
(`JoinError` names the keys that failed)."""

from pathlib import Path

import pandas as pd

REQUIRED = {
    "train.csv": ["Store", "DayOfWeek", "Date", "Sales", "Customers", "Open", "Promo", "StateHoliday",
                  "SchoolHoliday"],
    "test.csv": ["Id", "Store", "DayOfWeek", "Date", "Open", "Promo", "StateHoliday", "SchoolHoliday"],
    "store.csv": ["Store", "StoreType", "Assortment", "CompetitionDistance", "CompetitionOpenSinceMonth",
                  "CompetitionOpenSinceYear", "Promo2", "Promo2SinceWeek",
                  "Promo2SinceYear", "PromoInterval"],
    "store_states.csv": ["Store", "State"],
    "state_names.csv": ["StateName", "State"],
    "googletrend.csv": ["file", "week", "trend"],
    "weather.csv": ["file", "Date", "Max_TemperatureC", "Mean_TemperatureC", "Min_TemperatureC",
                    "Max_Humidity", "Mean_Humidity", "Min_Humidity", "Max_Wind_SpeedKm_h",
                    "Mean_Wind_SpeedKm_h", "CloudCover", "Events"],
}
DTYPES = {"StateHoliday": str, "PromoInterval": str, "Events": str, "StoreType": str, "Assortment": str,
          "State": str}


class JoinError(ValueError):
    """A join lost, duplicated or failed to match rows."""


def read_table(folder, name: str) -> pd.DataFrame:
    """Read one Rossmann CSV and check it has the columns this module needs."""
    path = Path(folder) / name
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: expected the Rossmann CSVs (see lessonlib.data.rossmann)")
    header = pd.read_csv(path, nrows=0).columns
    required = REQUIRED[name]
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; this file needs {required}")
    usecols = required if name == "weather.csv" else None
    dtype = {c: t for c, t in DTYPES.items() if c in header}
    df = pd.read_csv(path, usecols=usecols, dtype=dtype, keep_default_na=True)
    if "Date" in df.columns:
        df["Date"] = pd.to_datetime(df["Date"], format="%Y-%m-%d")
    return df


def read_tables(folder) -> dict:
    """The seven CSVs the features use (all but sample_submission), keyed by name without `.csv`."""
    return {name[:-4]: read_table(folder, name) for name in REQUIRED}


def describe_keys(keys: pd.DataFrame, limit: int = 10) -> str:
    """`Store=1, Date=...; ...`: the first `limit` key rows, for an error message."""
    rows = [", ".join(f"{k}={v}" for k, v in row.items()) for row in keys.head(limit).to_dict("records")]
    more = f" (and {len(keys) - limit} more)" if len(keys) > limit else ""
    return "; ".join(rows) + more


def checked_merge(left: pd.DataFrame, right: pd.DataFrame, on, what: str) -> pd.DataFrame:
    """Left-join `right` onto `left` by `on`, requiring every left row to match exactly one right row.

    Raises JoinError naming the duplicated right keys or the unmatched left keys."""
    on = [on] if isinstance(on, str) else list(on)
    dup = right.duplicated(on, keep=False)
    if dup.any():
        keys = right.loc[dup, on].drop_duplicates()
        raise JoinError(f"{what}: {len(keys)} key(s) appear more than once in the right table, which would "
                        f"duplicate rows: {describe_keys(keys)}")
    out = left.merge(right, on=on, how="left", indicator="_merge", validate="many_to_one")
    unmatched = out["_merge"] != "both"
    if unmatched.any():
        keys = out.loc[unmatched, on].drop_duplicates()
        raise JoinError(f"{what}: {len(keys)} key(s) have no match: {describe_keys(keys)}")
    assert len(out) == len(left), "a many-to-one left join keeps the row count"
    return out.drop(columns="_merge")


def week_start(dates: pd.Series) -> pd.Series:
    """The Sunday on or before each date (Google Trends weeks run Sunday to Saturday)."""
    return dates - pd.to_timedelta((dates.dt.day_of_week + 1) % 7, unit="D")


def trend_tables(googletrend: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-state weekly trend (State, WeekStart, trend) and the national one (WeekStart, trend_DE).

    The state is the third part of the file name (`Rossmann_DE_BY` -> BY); the national series is the
    file `Rossmann_DE`. Google's `NI` (Niedersachsen) is stored as `HB,NI` in store_states."""
    g = googletrend.dropna(subset=["file", "week"]).copy()
    g["WeekStart"] = pd.to_datetime(g["week"].str[:10], format="%Y-%m-%d")
    g["State"] = g["file"].str.split("_").str[2]
    g.loc[g["State"] == "NI", "State"] = "HB,NI"
    national = g.loc[g["State"].isna(), ["WeekStart", "trend"]].rename(columns={"trend": "trend_DE"})
    states = g.loc[g["State"].notna(), ["State", "WeekStart", "trend"]]
    return states, national


def weather_table(weather: pd.DataFrame, state_names: pd.DataFrame) -> pd.DataFrame:
    """Weather keyed by State code and Date (the file column holds the state's name)."""
    w = weather.dropna(subset=["file"]).rename(columns={"file": "StateName"})
    w = checked_merge(w, state_names, "StateName", "weather.file -> state_names.StateName")
    return w.drop(columns="StateName")


def join_tables(df: pd.DataFrame, tables: dict) -> pd.DataFrame:
    """Join train or test rows with store, state, weather and Google trend tables (all checked).

    The small tables are joined first (store + state per store; weather + trends per state and day),
    so only two joins touch the big table."""
    stores = checked_merge(tables["store"], tables["store_states"], "Store",
                           "store.csv -> store_states.csv (Store)")
    weather = weather_table(tables["weather"], tables["state_names"])
    daily = weather[weather["State"].isin(stores["State"].unique())].copy()
    daily["WeekStart"] = week_start(daily["Date"])
    states, national = trend_tables(tables["googletrend"])
    daily = checked_merge(daily, states, ["State", "WeekStart"],
                          "weather (State, day) -> googletrend.csv (State, week)")
    daily = checked_merge(daily, national, "WeekStart", "weather (day) -> googletrend.csv Rossmann_DE (week)")
    out = checked_merge(df, stores, "Store", "rows -> store.csv (Store)")
    out = checked_merge(out, daily.drop(columns="WeekStart"), ["State", "Date"],
                        "rows -> weather.csv + googletrend.csv (State, Date)")
    return out
