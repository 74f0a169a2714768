"""CsvSource: the user's files read back exactly, and every malformed file refused with where."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market.sources.base import MarketSource, NoVix, SourceUnavailable, SymbolNotAvailable
from market.sources.csv_source import CsvSource, MalformedFileError
from market.symbols import UnsafeSymbolError
from market.validation import BarValidationError
from market.vocabulary import BAR_COLUMNS

START, END = date(2024, 3, 1), date(2024, 3, 31)


def bars(days: int = 10, first: str = "2024-03-04", base: float = 100.0) -> pd.DataFrame:
    """A canonical bar frame on consecutive NYSE sessions."""
    index = pd.bdate_range(first, periods=days, name="date").astype("datetime64[ns]")
    close = base + np.linspace(0.0, 3.0, days)
    return pd.DataFrame(
        {"open": close - 0.25, "high": close + 1.0, "low": close - 1.0, "close": close,
         "volume": np.arange(days, dtype=float) * 1000.0 + 5e5},
        index=index,
    )


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def fetch(folder: Path, symbol: str, start: date = START, end: date = END) -> pd.DataFrame:
    return CsvSource(folder).fetch_bars([symbol], start, end)[symbol]


# -- round trips and layout -------------------------------------------------------------------


def test_a_csv_round_trip_is_exact(tmp_path: Path) -> None:
    frame = bars()
    frame.to_csv(tmp_path / "AAPL.csv")
    source = CsvSource(tmp_path)
    assert isinstance(source, MarketSource)
    pd.testing.assert_frame_equal(source.fetch_bars(["AAPL"], START, END)["AAPL"], frame)
    assert source.info.real is True and source.info.provenance == f"user files in {tmp_path}"


def test_a_parquet_round_trip_is_exact(tmp_path: Path) -> None:
    frame = bars()
    frame.to_parquet(tmp_path / "BRK-B.parquet")
    pd.testing.assert_frame_equal(fetch(tmp_path, "BRK-B"), frame)


def test_dates_may_be_an_unnamed_index(tmp_path: Path) -> None:
    frame = bars()
    frame.rename_axis(None).to_csv(tmp_path / "IBM.csv")  # header starts with an empty name
    frame.rename_axis(None).to_parquet(tmp_path / "MSFT.parquet")  # a DatetimeIndex
    pd.testing.assert_frame_equal(fetch(tmp_path, "IBM"), frame)
    pd.testing.assert_frame_equal(fetch(tmp_path, "MSFT"), frame)


def test_headers_are_case_insensitive_and_extra_columns_ignored(tmp_path: Path) -> None:
    write(tmp_path, "GE.csv", " DATE ,Open,HIGH,low, Close ,VOLUME,Dividends\n"
                              "2024-03-04, 10, 11, 9, 10.5, 100, 0\n"
                              "2024-03-05, 10.5, 11.5, 10, 11, 200, 0\n")
    got = fetch(tmp_path, "GE")
    assert list(got.columns) == list(BAR_COLUMNS)
    assert got["close"].tolist() == [10.5, 11.0] and got["volume"].tolist() == [100.0, 200.0]


@pytest.mark.parametrize("header", ["Adj Close", "adj_close", "ADJ_CLOSE"])
def test_an_adj_close_column_adjusts_all_four_prices(tmp_path: Path, header: str) -> None:
    write(tmp_path, "XOM.csv", f"Date,Open,High,Low,Close,{header},Volume\n"
                               "2024-03-04,20,22,19,21,10.5,1000\n"
                               "2024-03-05,21,23,20,22,22,1100\n")
    got = fetch(tmp_path, "XOM")
    assert got.loc["2024-03-04"].tolist() == [10.0, 11.0, 9.5, 10.5, 1000.0]  # factor 0.5
    assert got.loc["2024-03-05"].tolist() == [21.0, 23.0, 20.0, 22.0, 1100.0]  # factor 1


def test_the_range_is_inclusive_and_a_newest_first_file_is_sorted(tmp_path: Path) -> None:
    frame = bars(days=10)  # 2024-03-04 .. 2024-03-15
    frame.iloc[::-1].to_csv(tmp_path / "KO.csv")
    got = fetch(tmp_path, "KO", date(2024, 3, 5), date(2024, 3, 8))
    assert list(got.index.strftime("%d")) == ["05", "06", "07", "08"]
    pd.testing.assert_frame_equal(got, frame.loc["2024-03-05":"2024-03-08"])
    weekend = fetch(tmp_path, "KO", date(2024, 3, 9), date(2024, 3, 10))
    assert weekend.empty and list(weekend.columns) == list(BAR_COLUMNS)
    with pytest.raises(SymbolNotAvailable, match=r"KO\.csv holds KO from 2024-03-04 to 2024-03-15"):
        fetch(tmp_path, "KO", date(2023, 1, 2), date(2023, 12, 29))


def test_available_symbols_skip_unsafe_stems_other_files_and_the_vix(tmp_path: Path) -> None:
    for name in ("AAPL.csv", "BRK-B.parquet", "^GSPC.csv", "^VIX.csv", "aapl.csv", "my data.csv",
                 "notes.txt"):
        write(tmp_path, name, "")
    (tmp_path / "SUB.csv").mkdir()
    source = CsvSource(tmp_path)
    assert source.available_symbols() == ("AAPL", "BRK-B", "^GSPC")
    ignored = {path.name: why for path, why in source.ignored_files().items()}
    assert set(ignored) == {"aapl.csv", "my data.csv", "notes.txt"}
    assert "unsafe symbol 'aapl'" in ignored["aapl.csv"]
    with pytest.raises(UnsafeSymbolError, match="unsafe symbol '../AAPL'"):
        source.fetch_bars(["../AAPL"], START, END)


# -- errors: the file and where ---------------------------------------------------------------


def test_a_missing_file_names_the_paths_tried(tmp_path: Path) -> None:
    with pytest.raises(SymbolNotAvailable, match="no file for TSLA: tried .*TSLA.csv, .*TSLA.parquet"):
        fetch(tmp_path, "TSLA")


def test_a_file_named_in_another_case_is_named_in_the_error(tmp_path: Path) -> None:
    (tmp_path / "spy.csv").write_text("date,open,high,low,close,volume\n2024-03-04,1,2,1,2,10\n")
    with pytest.raises(SymbolNotAvailable, match=r"no file for SPY: .*; found spy\.csv: .*rename it to SPY\.csv"):
        fetch(tmp_path, "SPY")


def test_a_missing_directory_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="does not exist"):
        CsvSource(tmp_path / "nowhere").fetch_bars(["AAPL"], START, END)


def test_missing_columns_are_listed(tmp_path: Path) -> None:
    write(tmp_path, "AAPL.csv", "Date,Open,Close\n2024-03-04,10,11\n")
    with pytest.raises(MalformedFileError, match=r"AAPL\.csv: missing columns high, low, volume "
                                                 r"\(found: Date, Open, Close") as caught:
        fetch(tmp_path, "AAPL")
    assert caught.value.path == tmp_path / "AAPL.csv" and caught.value.row is None


def test_an_unparsable_date_gives_its_row_and_value(tmp_path: Path) -> None:
    write(tmp_path, "AAPL.csv", "date,open,high,low,close,volume\n"
                                "2024-03-04,10,11,9,10,100\n"
                                "2024-03-05,10,11,9,10,100\n"
                                "2024-13-45,10,11,9,10,100\n")
    with pytest.raises(MalformedFileError, match=r"AAPL\.csv: row 3 \(line 4\), column 'date': "
                                                 r"cannot parse date '2024-13-45'") as caught:
        fetch(tmp_path, "AAPL")
    assert (caught.value.row, caught.value.value) == (3, "2024-13-45")


def test_a_non_numeric_price_gives_its_row_column_and_value(tmp_path: Path) -> None:
    write(tmp_path, "AAPL.csv", "date,open,high,low,close,volume\n"
                                "2024-03-04,10,11,9,10,100\n"
                                "2024-03-05,10,11,9,1O.5,100\n")  # a letter O
    with pytest.raises(MalformedFileError, match=r"row 2 \(line 3\), column 'close': '1O\.5' is not "
                                                 "a number") as caught:
        fetch(tmp_path, "AAPL")
    assert (caught.value.row, caught.value.column, caught.value.value) == (2, "close", "1O.5")


def test_a_non_numeric_parquet_value_gives_its_row(tmp_path: Path) -> None:
    frame = bars(days=3).astype({"low": object})
    frame.loc[frame.index[1], "low"] = "n/a!"
    frame["low"] = frame["low"].astype(str)
    frame.to_parquet(tmp_path / "AAPL.parquet")
    with pytest.raises(MalformedFileError, match=r"AAPL\.parquet: row 2, column 'low': 'n/a!' is not"):
        fetch(tmp_path, "AAPL")


@pytest.mark.parametrize(("cells", "column", "rule"), [
    ("-10,11,9,10,100", "open", "prices must be positive"),
    ("10,11,9,12,100", "high", r"high >= max\(open, close\)"),
    ("10,11,9,10,-5", "volume", "volume >= 0"),
    ("10,11,,10,100", "low", "values must be finite numbers"),
])
def test_rule_breaks_come_from_validation_with_symbol_date_column_rule(
    tmp_path: Path, cells: str, column: str, rule: str
) -> None:
    write(tmp_path, "AAPL.csv", "date,open,high,low,close,volume\n"
                                "2024-03-04,10,11,9,10,100\n"
                                f"2024-03-05,{cells}\n")
    with pytest.raises(BarValidationError, match=f"AAPL: {column} on 2024-03-05 breaks the rule: {rule}"):
        fetch(tmp_path, "AAPL")


def test_a_rule_break_outside_the_range_still_refuses_the_file(tmp_path: Path) -> None:
    write(tmp_path, "AAPL.csv", "date,open,high,low,close,volume\n"
                                "2023-03-06,10,11,9,-10,100\n"
                                "2024-03-04,10,11,9,10,100\n")
    with pytest.raises(BarValidationError, match="AAPL: close on 2023-03-06"):
        fetch(tmp_path, "AAPL")


def test_duplicate_dates_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "AAPL.csv", "date,open,high,low,close,volume\n"
                                "2024-03-04,10,11,9,10,100\n"
                                "2024-03-04,10,11,9,10,100\n")
    with pytest.raises(BarValidationError, match="date on 2024-03-04 breaks the rule: dates must be unique"):
        fetch(tmp_path, "AAPL")


def test_a_bad_adj_close_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "AAPL.csv", "date,open,high,low,close,adj close,volume\n"
                                "2024-03-04,10,11,9,10,0,100\n")
    with pytest.raises(BarValidationError, match="AAPL: adj close on 2024-03-04"):
        fetch(tmp_path, "AAPL")


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("AAPL.csv", "date,open,high,low,close,volume\n", "holds no rows"),
    ("AAPL.csv", "", "cannot be read"),
    ("AAPL.parquet", "this is not parquet", "cannot be read"),
    ("AAPL.csv", "date,open,high,low,close,Close,volume\n2024-03-04,1,1,1,1,1,1\n",
     "columns 'close' and 'Close' both mean 'close'"),
])
def test_unreadable_files_name_the_file(tmp_path: Path, name: str, content: str, problem: str) -> None:
    write(tmp_path, name, content)
    with pytest.raises(MalformedFileError, match=f"{name}: {problem}"):
        fetch(tmp_path, "AAPL")


def test_a_symbol_with_both_a_csv_and_a_parquet_is_ambiguous(tmp_path: Path) -> None:
    bars().to_csv(tmp_path / "AAPL.csv")
    bars().to_parquet(tmp_path / "AAPL.parquet")
    with pytest.raises(MalformedFileError, match="AAPL has both AAPL.csv and AAPL.parquet"):
        fetch(tmp_path, "AAPL")


# -- the VIX ----------------------------------------------------------------------------------


def test_the_vix_from_a_close_column(tmp_path: Path) -> None:
    write(tmp_path, "^VIX.csv", "Date,Open,High,Low,Close\n"
                                "2024-03-05,14,15,13,14.5\n"
                                "2024-03-04,13,14,12,13.5\n"
                                "2024-03-06,15,16,14,15.5\n")
    vix = CsvSource(tmp_path).fetch_vix(date(2024, 3, 4), date(2024, 3, 5))
    assert vix.name == "vix" and vix.index.name == "date" and vix.dtype == "float64"
    assert vix.tolist() == [13.5, 14.5]
    assert CsvSource(tmp_path).fetch_vix(date(2020, 1, 1), date(2020, 12, 31)).empty


def test_the_vix_from_a_vix_column_in_parquet(tmp_path: Path) -> None:
    frame = pd.DataFrame({"VIX": [20.0, 21.0]}, index=pd.DatetimeIndex(["2024-03-04", "2024-03-05"]))
    frame.to_parquet(tmp_path / "VIX.parquet")
    assert CsvSource(tmp_path).fetch_vix(START, END).tolist() == [20.0, 21.0]


def test_vix_errors(tmp_path: Path) -> None:
    with pytest.raises(NoVix, match=r"no VIX file in .*looked for \^VIX\.csv, VIX\.csv"):
        CsvSource(tmp_path).fetch_vix(START, END)
    write(tmp_path, "VIX.csv", "date,close\n2024-03-04,-1\n")
    with pytest.raises(BarValidationError, match="close on 2024-03-04"):
        CsvSource(tmp_path).fetch_vix(START, END)
    write(tmp_path, "VIX.csv", "date,level\n2024-03-04,14\n")
    with pytest.raises(MalformedFileError, match="missing column vix"):
        CsvSource(tmp_path).fetch_vix(START, END)
    write(tmp_path, "^VIX.csv", "date,close\n2024-03-04,14\n")
    with pytest.raises(MalformedFileError, match="more than one VIX file"):
        CsvSource(tmp_path).fetch_vix(START, END)
