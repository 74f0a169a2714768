"""The Parquet cache: incremental refresh, re-adjustment, atomic writes, safe file names."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market.cache import BarCache, NotCached
from market.calendar import nyse_sessions
from market.sources.base import MarketSource, SourceInfo
from market.sources.csv_source import CsvSource
from market.symbols import UnsafeSymbolError
from market.validation import BarValidationError


def history(first: str, last: str, scale: float = 1.0) -> pd.DataFrame:
    sessions = nyse_sessions(first, last)
    close = 100.0 * np.exp(np.cumsum(np.random.default_rng(7).normal(0, 0.01, len(sessions)))) * scale
    return pd.DataFrame({"open": close * 0.999, "high": close * 1.01, "low": close * 0.99, "close": close,
                         "volume": np.full(len(sessions), 1e6)}, index=sessions)


class Recording:
    """A real source, with the ranges it was asked for written down (a wrapper, not a fake)."""

    def __init__(self, source: MarketSource) -> None:
        self.source = source
        self.info: SourceInfo = source.info
        self.calls: list[tuple[tuple[str, ...], date, date]] = []

    def fetch_bars(self, symbols: Sequence[str], start: date, end: date) -> dict[str, pd.DataFrame]:
        self.calls.append((tuple(symbols), start, end))
        return self.source.fetch_bars(symbols, start, end)

    def fetch_vix(self, start: date, end: date) -> pd.Series:
        return self.source.fetch_vix(start, end)

    def available_symbols(self) -> tuple[str, ...] | None:
        return self.source.available_symbols()


@pytest.fixture
def files(tmp_path: Path) -> Path:
    folder = tmp_path / "files"
    folder.mkdir()
    full = history("2024-01-02", "2024-06-28")
    full.to_csv(folder / "AAA.csv")
    (full * [1, 1, 1, 1, 2]).to_csv(folder / "BBB.csv")
    return folder


def test_refresh_fetches_only_sessions_after_the_last_cached_one(files: Path, tmp_path: Path) -> None:
    source = Recording(CsvSource(files))
    cache = BarCache(tmp_path / "bars", source.info.name)
    first = cache.refresh(source, ["AAA", "BBB"], date(2024, 1, 2), date(2024, 3, 28))
    assert [r.added for r in first] == [len(nyse_sessions("2024-01-02", "2024-03-28"))] * 2
    assert source.calls == [(("AAA", "BBB"), date(2024, 1, 2), date(2024, 3, 28))]  # one batched call

    second = cache.refresh(source, ["AAA", "BBB"], date(2024, 1, 2), date(2024, 6, 28))
    assert source.calls[-1] == (("AAA", "BBB"), date(2024, 3, 28), date(2024, 6, 28))
    assert [r.added for r in second] == [len(nyse_sessions("2024-03-29", "2024-06-28"))] * 2
    pd.testing.assert_frame_equal(cache.read("AAA"), CsvSource(files).fetch_bars(
        ["AAA"], date(2024, 1, 2), date(2024, 6, 28))["AAA"])

    before = cache.path_for("AAA").stat().st_mtime_ns
    third = cache.refresh(source, ["AAA"], date(2024, 1, 2), date(2024, 6, 28))
    assert third[0].added == 0 and not third[0].readjusted
    assert cache.path_for("AAA").stat().st_mtime_ns == before  # nothing new, nothing rewritten


def test_an_earlier_start_backfills_the_head(files: Path, tmp_path: Path) -> None:
    source = Recording(CsvSource(files))
    cache = BarCache(tmp_path / "bars", source.info.name)
    cache.refresh(source, ["AAA"], date(2024, 3, 1), date(2024, 4, 30))
    result = cache.refresh(source, ["AAA"], date(2024, 1, 2), date(2024, 4, 30))[0]
    assert result.first == pd.Timestamp("2024-01-02") and result.rows_after == len(nyse_sessions("2024-01-02", "2024-04-30"))


def test_a_readjusted_history_is_fetched_whole_again(files: Path, tmp_path: Path) -> None:
    source = Recording(CsvSource(files))
    cache = BarCache(tmp_path / "bars", source.info.name)
    cache.refresh(source, ["AAA"], date(2024, 1, 2), date(2024, 3, 28))
    history("2024-01-02", "2024-06-28", scale=0.5).to_csv(files / "AAA.csv")  # a 2-for-1 split, adjusted
    result = cache.refresh(source, ["AAA"], date(2024, 1, 2), date(2024, 6, 28))[0]
    assert result.readjusted
    assert source.calls[-1] == (("AAA",), date(2024, 1, 2), date(2024, 6, 28))
    np.testing.assert_allclose(cache.read("AAA")["close"].iloc[0], history("2024-01-02", "2024-01-02").iloc[0]["close"] * 0.5)


def test_a_failed_write_leaves_the_previous_file_intact(files: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    source = CsvSource(files)
    cache = BarCache(tmp_path / "bars", source.info.name)
    cache.refresh(source, ["AAA"], date(2024, 1, 2), date(2024, 3, 28))
    good = cache.read("AAA")
    checksum = cache.checksum("AAA")

    def crash_mid_write(self: pd.DataFrame, path: Path, *args: object, **kwargs: object) -> None:
        Path(path).write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", crash_mid_write)
    with pytest.raises(OSError, match="disk full"):
        cache.refresh(source, ["AAA"], date(2024, 1, 2), date(2024, 6, 28))
    monkeypatch.undo()
    pd.testing.assert_frame_equal(cache.read("AAA"), good)
    assert cache.checksum("AAA") == checksum
    assert [p.name for p in cache.directory.iterdir()] == ["AAA.parquet"]  # no temporary file left


def test_a_bad_frame_is_refused_before_it_touches_the_cache(files: Path, tmp_path: Path) -> None:
    source = CsvSource(files)
    cache = BarCache(tmp_path / "bars", source.info.name)
    cache.refresh(source, ["AAA"], date(2024, 1, 2), date(2024, 3, 28))
    good = cache.read("AAA")
    bad = good.copy()
    bad.loc[pd.Timestamp("2024-02-15"), "close"] = -3.0
    with pytest.raises(BarValidationError, match="AAA: close on 2024-02-15 breaks the rule: prices must be positive"):
        cache.write("AAA", bad)
    pd.testing.assert_frame_equal(cache.read("AAA"), good)


@pytest.mark.parametrize("symbol", ["../x", "a/b", "..", "/etc/passwd", "AAA/../../x"])
def test_unsafe_symbols_never_become_paths(files: Path, tmp_path: Path, symbol: str) -> None:
    source = Recording(CsvSource(files))
    cache = BarCache(tmp_path / "bars", source.info.name)
    with pytest.raises(UnsafeSymbolError):
        cache.path_for(symbol)
    with pytest.raises(UnsafeSymbolError):
        cache.refresh(source, ["AAA", symbol], date(2024, 1, 2), date(2024, 3, 28))
    assert source.calls == []  # refused before anything was fetched
    with pytest.raises(ValueError, match="source name"):
        BarCache(tmp_path / "bars", "../elsewhere")


def test_sources_have_separate_directories_and_missing_symbols_are_clear(files: Path, tmp_path: Path) -> None:
    csv_cache = BarCache(tmp_path / "bars", "csv")
    csv_cache.refresh(CsvSource(files), ["AAA"], date(2024, 1, 2), date(2024, 1, 31))
    assert csv_cache.symbols() == ["AAA"]
    assert BarCache(tmp_path / "bars", "simulated").symbols() == []
    with pytest.raises(NotCached, match="BBB is not cached for source 'csv'"):
        csv_cache.read("BBB")


def test_the_vix_series_is_cached_and_checked(tmp_path: Path) -> None:
    cache = BarCache(tmp_path / "bars", "csv")
    sessions = nyse_sessions("2024-01-02", "2024-02-29")
    vix = pd.Series(np.linspace(12, 20, len(sessions)), index=sessions, name="vix")
    stored = cache.refresh_series("^VIX", lambda s, e: vix.loc[str(s):str(e)], date(2024, 1, 2), date(2024, 1, 31))
    assert len(stored) == len(nyse_sessions("2024-01-02", "2024-01-31"))
    grown = cache.refresh_series("^VIX", lambda s, e: vix.loc[str(s):str(e)], date(2024, 1, 2), date(2024, 2, 29))
    pd.testing.assert_series_equal(grown, vix, check_freq=False, check_names=False)
    pd.testing.assert_series_equal(cache.read_series("^VIX"), vix, check_freq=False, check_names=False)
    bad = vix.copy()
    bad.iloc[3] = 0.0
    with pytest.raises(ValueError, match="on 2024-01-05 is not positive"):
        cache.refresh_series("^VIX", lambda s, e: bad, date(2023, 12, 1), date(2024, 2, 29))
    pd.testing.assert_series_equal(cache.read_series("^VIX"), vix, check_freq=False, check_names=False)
