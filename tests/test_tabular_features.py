"""Rossmann feature engineering (dates, stores, events, closures, split) on a tiny hand-made copy."""

import numpy as np
import pandas as pd
import pytest

from lessonlib.tabular import features as F


@pytest.fixture
def folder(tmp_path, write_tables):
    return write_tables(tmp_path)


def test_build_keeps_every_row_once_and_joins_everything(folder, table_dates):
    train, test = F.build(folder)
    assert len(train) == 2 * len(table_dates.train) and len(test) == 2 * len(table_dates.test)
    assert not train.duplicated(["Store", "Date"]).any()
    assert sorted(test["Id"]) == list(range(1, len(test) + 1))
    # googletrend NI joins stores of state "HB,NI"; weeks run Sunday..Saturday
    ni = train[train["Store"] == 2].set_index("Date")
    assert ni.loc["2015-07-25", "trend"] == 50 and ni.loc["2015-07-26", "trend"] == 51
    assert train["trend_DE"].notna().all() and train["Max_TemperatureC"].eq(10).all()


def test_date_parts(folder):
    train, _ = F.build(folder)
    row = train[(train["Store"] == 1) & (train["Date"] == "2015-07-31")].iloc[0]
    assert (row.Year, row.Month, row.Day, row.Week, row.Dayofyear) == (2015, 7, 31, 31, 212)
    assert row.Is_month_end and not row.Is_month_start and not row.Is_quarter_end


def test_store_features(folder):
    train, test = F.build(folder)
    s1 = train[train["Store"] == 1].set_index("Date")
    assert s1.loc["2015-07-20", "CompetitionMonthsOpen"] == 1  # opened 2015-06
    # Promo2 since ISO week 27 of 2015 = Monday 2015-06-29; 2015-07-20 is 3 weeks later
    assert s1.loc["2015-07-20", "Promo2Weeks"] == 3
    assert not s1["IsPromo2Month"].any()
    assert test.loc[test["Store"] == 1, "IsPromo2Month"].all()  # August is in Feb,May,Aug,Nov
    s2 = train[train["Store"] == 2]
    assert s2["CompetitionMonthsOpen"].isna().all() and s2["Promo2Weeks"].isna().all()


def same(a, b) -> bool:
    return (np.isnan(a) and np.isnan(b)) or a == b


def test_event_features_match_a_slow_loop(folder):
    train, test = F.build(folder)
    both = pd.concat([train, test]).sort_values(["Store", "Date"])
    for _, g in both.groupby("Store"):
        dates = list(g["Date"])
        for e in F.EVENTS:
            hit = [str(v) != "0" for v in g[e]]
            for i, d in enumerate(dates):
                past = [(d - dates[j]).days for j in range(i + 1) if hit[j]]
                future = [(dates[j] - d).days for j in range(i, len(dates)) if hit[j]]
                row = g.iloc[i]
                assert same(row[f"After{e}"], min(past) if past else np.nan)
                assert same(row[f"Before{e}"], min(future) if future else np.nan)
                ago = [(d - dj).days for dj in dates]
                assert row[f"{e}_bw"] == sum(h for h, a in zip(hit, ago, strict=True) if 0 <= a < 7)
                assert row[f"{e}_fw"] == sum(h for h, a in zip(hit, ago, strict=True) if -7 < a <= 0)


def test_event_windows_are_calendar_days_across_gaps():
    df = pd.DataFrame({"Store": [1, 1, 1], "Date": pd.to_datetime(["2015-01-01", "2015-01-02", "2015-01-20"]),
                       "Promo": [1, 0, 0]})
    out = F.add_event_features(df, events=("Promo",))
    assert list(out["Promo_bw"]) == [1, 1, 0]
    assert list(out["AfterPromo"]) == [0, 1, 19]
    assert list(df.columns) == ["Store", "Date", "Promo"], "the input frame is left unchanged"


def test_split_and_sales_rows(folder):
    train, _ = F.build(folder)
    rows = F.sales_rows(train)
    assert (rows["Open"] == 1).all() and (rows["Sales"] > 0).all()
    window = ("2015-07-25", "2015-07-27")
    fit, valid = F.split(rows, window)
    assert len(fit) + len(valid) == len(rows) and fit["Date"].max() == pd.Timestamp("2015-07-31")
    fit, valid = F.split(rows, window, forecast=True)
    assert fit["Date"].max() < pd.Timestamp(window[0]) and valid["Date"].between(*window).all()


def test_drop_outliers_removes_days_far_from_their_store_weekday_promo_median():
    sales = [1000, 1100, 900, 1050, 400, 2000, 2100, 1900, 5000]  # 400 is 0.9 below its group in log
    train = pd.DataFrame({"Store": [1] * 5 + [2] * 4, "DayOfWeek": 1, "Promo": [0] * 5 + [1] * 4,
                          "Sales": sales, "AfterLongClosure": 30, "BeforeLongClosure": 30})
    kept = F.drop_outliers(train)
    assert kept["Sales"].tolist() == [1000, 1100, 900, 1050, 2000, 2100, 1900]  # 5000: 0.9 above
    assert F.log_sales_deviation(train).iloc[4] == pytest.approx(np.log(400 / 1000))
    assert len(F.drop_outliers(train, max_log_dev=1.0)) == len(train)
    with pytest.raises(ValueError, match="positive"):
        F.drop_outliers(train, max_log_dev=0)
    train.loc[8, "AfterLongClosure"] = 3  # the 5000 is the third day after a refurbishment
    assert F.drop_outliers(train)["Sales"].tolist()[-1] == 5000
    assert F.drop_outliers(train, after_closure=2)["Sales"].tolist()[-1] == 1900
    assert F.drop_outliers(train, closure_max_log_dev=0.8)["Sales"].tolist()[-1] == 1900  # 0.9 > 0.8
    before = train.assign(AfterLongClosure=30, BeforeLongClosure=3)  # before a closure: no allowance
    assert F.drop_outliers(before)["Sales"].tolist()[-1] == 1900
    with pytest.raises(KeyError, match="add_closure_features"):
        F.drop_outliers(train.drop(columns="AfterLongClosure"))
    assert len(F.drop_outliers(train.drop(columns="AfterLongClosure"), after_closure=0)) == 7


def test_closure_features_by_hand():
    # store 1: open 2 days, closed 5 (a long closure), open 3, closed 2 (short), open 1;
    # store 2: closed 3 days, a missing day, closed 2 more: the gap breaks the run, so no long closure.
    opens = [1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 1]
    dates = list(pd.date_range("2015-03-01", periods=len(opens)))
    days2 = [d for i, d in enumerate(pd.date_range("2015-03-01", periods=8)) if i != 3]
    df = pd.DataFrame({"Store": [1] * len(opens) + [2] * len(days2), "Date": dates + days2,
                       "Open": opens + [0, 0, 0, 0, 0, 1, 1]})
    out = F.add_closure_features(df.iloc[::-1], min_days=5, cap=9).sort_index()  # any row order
    one, two = out[out["Store"] == 1], out[out["Store"] == 2]
    assert one["BeforeLongClosure"].tolist() == [2, 1, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]
    assert one["AfterLongClosure"].tolist() == [9, 9, 9, 9, 9, 9, 9, 1, 2, 3, 4, 5, 6]
    assert (two[["AfterLongClosure", "BeforeLongClosure"]] == 9).all().all()
    # with min_days=3 (the default) store 2's first three days are a long closure; the two after the gap
    # are not
    assert F.add_closure_features(df)["AfterLongClosure"].iloc[-2:].tolist() == [4, 5]
    df.loc[0, "Open"] = np.nan  # a missing Open counts as open
    assert F.add_closure_features(df, cap=9)["BeforeLongClosure"].iloc[0] == 2


def test_closure_features_match_a_slow_loop():
    rng = np.random.default_rng(0)
    rows = []
    for store in (1, 2, 3):
        day, dates = pd.Timestamp("2015-01-01"), []
        while len(dates) < 80:
            day += pd.Timedelta(days=1 + (rng.random() < 0.05))  # now and then a missing day
            dates.append(day)
        closed = np.zeros(80, bool)
        for start in rng.integers(0, 75, 4):
            closed[start:start + rng.integers(1, 9)] = True
        rows += [(store, d, int(not c)) for d, c in zip(dates, closed, strict=True)]
    df = pd.DataFrame(rows, columns=["Store", "Date", "Open"])
    out = F.add_closure_features(df, min_days=5, cap=30)
    for _, g in df.groupby("Store"):
        dates, closed = list(g["Date"]), list(g["Open"] == 0)
        in_long = [False] * len(g)
        i = 0
        while i < len(g):  # mark runs of >= 5 closed, consecutive calendar days
            j = i
            while j + 1 < len(g) and closed[i] and closed[j + 1] and (dates[j + 1] - dates[j]).days == 1:
                j += 1
            if closed[i] and j - i + 1 >= 5:
                in_long[i:j + 1] = [True] * (j - i + 1)
            i = j + 1
        for k, idx in enumerate(g.index):
            past = [(dates[k] - dates[m]).days for m in range(k) if in_long[m]]
            future = [(dates[m] - dates[k]).days for m in range(k + 1, len(g)) if in_long[m]]
            want_after = 30 if in_long[k] or not past else min(min(past), 30)
            want_before = 30 if in_long[k] or not future else min(min(future), 30)
            assert out.loc[idx, "AfterLongClosure"] == want_after
            assert out.loc[idx, "BeforeLongClosure"] == want_before
