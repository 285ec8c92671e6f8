import pandas as pd
import pytest

from lessonlib.tabular import joins


@pytest.fixture
def folder(tmp_path, write_tables):
    write_tables(tmp_path)
    return tmp_path


def joined_train(folder):
    tables = joins.read_tables(folder)
    return joins.join_tables(tables["train"], tables)


def test_every_row_joined_once_with_every_table(folder, table_dates):
    train = joined_train(folder)
    assert len(train) == 2 * len(table_dates.train)
    assert {"StoreType", "State", "Mean_TemperatureC", "trend", "trend_DE"} <= set(train.columns)
    assert train[["StoreType", "State", "trend", "trend_DE"]].notna().all().all()


def test_missing_column_names_file_and_column(folder):
    df = pd.read_csv(folder / "store.csv").drop(columns="Assortment")
    df.to_csv(folder / "store.csv", index=False)
    with pytest.raises(ValueError, match=r"store\.csv.*Assortment"):
        joins.read_table(folder, "store.csv")


def test_unmatched_key_is_named(folder):
    states = pd.read_csv(folder / "store_states.csv")
    states.loc[states["Store"] == 2, "State"] = "XX"
    states.to_csv(folder / "store_states.csv", index=False)
    with pytest.raises(joins.JoinError, match=r"weather.*State=XX"):
        joined_train(folder)


def test_missing_store_is_named(folder):
    pd.read_csv(folder / "store.csv").query("Store == 1").to_csv(folder / "store.csv", index=False)
    with pytest.raises(joins.JoinError, match=r"store\.csv.*Store=2"):
        joined_train(folder)


def test_duplicated_right_key_is_named(folder):
    store = pd.read_csv(folder / "store.csv")
    pd.concat([store, store.iloc[[0]]]).to_csv(folder / "store.csv", index=False)
    with pytest.raises(joins.JoinError, match=r"more than once.*Store=1"):
        joined_train(folder)


def test_blank_lines_in_external_tables_are_skipped(folder, table_dates):
    for name in ("googletrend.csv", "weather.csv"):
        text = (folder / name).read_text().splitlines()
        (folder / name).write_text("\n".join(text[:3] + [""] + text[3:]) + "\n\n")
    assert len(joined_train(folder)) == 2 * len(table_dates.train)
