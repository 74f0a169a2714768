"""A folder of the user's files is a universe: its members, proxy and sectors; a bad file among
good ones costs only itself."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market.cache import BarCache
from market.calendar import nyse_sessions
from market.config import SourcesSettings
from market.sources import open_source
from market.sources.base import NoVix, SourceUnavailable, SymbolNotAvailable
from market.sources.csv_source import CsvSource, MalformedFileError, folder_universe
from market.universe import Universe
from market.vocabulary import UNKNOWN_SECTOR, Sector

CONFIGURED = Universe(market_proxy="SPY", members=[{"symbol": "AAPL", "sector": "Information Technology"},
                                                   {"symbol": "XOM", "sector": "Energy"}])
START, END = date(2024, 1, 2), date(2024, 3, 28)


def write_bars(folder: Path, symbol: str, seed: int = 0) -> None:
    sessions = nyse_sessions(START, END)
    close = 50 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.01, len(sessions))))
    pd.DataFrame({"Date": sessions, "Open": close, "High": close * 1.01, "Low": close * 0.99, "Close": close,
                  "Volume": 1e6}).to_csv(folder / f"{symbol}.csv", index=False)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for seed, symbol in enumerate(("SPY", "AAPL", "ZZZ", "YYY")):
        write_bars(tmp_path, symbol, seed)
    (tmp_path / "notes.txt").write_text("not data")
    return tmp_path


def test_the_files_are_the_members_with_configured_given_or_unknown_sectors(folder: Path) -> None:
    (folder / "sectors.csv").write_text("Symbol,Sector\nyyy, energy \nQQQ,Financials\n")
    source = CsvSource(folder)
    universe = folder_universe(source, CONFIGURED)
    assert universe.market_proxy == "SPY" and universe.symbols == ("AAPL", "YYY", "ZZZ")
    assert universe.sector_of("AAPL") is Sector.INFORMATION_TECHNOLOGY  # from the configuration
    assert universe.sector_of("YYY") is Sector.ENERGY  # from sectors.csv, names matched loosely
    assert universe.sector_of("ZZZ") == UNKNOWN_SECTOR
    assert len(source.notes) == 1 and "no sector for ZZZ" in source.notes[0]
    assert folder / "sectors.csv" not in source.ignored_files()


def test_open_source_serves_the_folder_and_the_configured_proxy_file(folder: Path) -> None:
    write_bars(folder, "^GSPC")
    settings = SourcesSettings.model_validate({"csv": {"directory": str(folder), "market_proxy": "^GSPC"}})
    source, universe = open_source("csv", CONFIGURED, settings)
    assert universe.market_proxy == "^GSPC" and "SPY" in universe.symbols and "^GSPC" not in universe.symbols
    assert isinstance(source, CsvSource)


def test_a_folder_without_the_proxy_or_without_stocks_is_refused(tmp_path: Path) -> None:
    write_bars(tmp_path, "AAPL")
    with pytest.raises(SymbolNotAvailable, match=r"no file for the market proxy SPY in .*add SPY\.csv"):
        folder_universe(CsvSource(tmp_path), CONFIGURED)
    (tmp_path / "AAPL.csv").rename(tmp_path / "SPY.csv")
    with pytest.raises(SymbolNotAvailable, match="holds only the market proxy SPY"):
        folder_universe(CsvSource(tmp_path), CONFIGURED)


def test_a_bad_sectors_file_names_its_row(folder: Path) -> None:
    (folder / "sectors.csv").write_text("symbol,sector\nZZZ,Energy\nYYY,Astrology\n")
    with pytest.raises(MalformedFileError, match=r"row 2 \(line 3\), column 'sector': 'Astrology' is not a GICS"):
        folder_universe(CsvSource(folder), CONFIGURED)


def test_no_vix_file_is_its_own_error(folder: Path) -> None:
    with pytest.raises(NoVix, match="no VIX file in"):
        CsvSource(folder).fetch_vix(START, END)


def test_a_bad_file_among_good_ones_costs_only_itself(folder: Path, tmp_path: Path) -> None:
    cache = BarCache(tmp_path / "cache", "csv")
    source = CsvSource(folder)
    cache.refresh(source, ["YYY"], START, date(2024, 2, 29))
    before = cache.path_for("YYY").read_bytes()
    (folder / "YYY.csv").write_text((folder / "YYY.csv").read_text().replace("\n2024-03-01,", "\n2024-03-01x,"))
    (folder / "BAD.csv").write_text("date,open,high,low,close,volume\n2024-01-02,1,2,1,two,5\n")

    refused: dict[str, str] = {}
    results = cache.refresh(source, ["SPY", "AAPL", "BAD", "YYY", "ZZZ", "NOPE"], START, END, refused=refused)
    assert [r.symbol for r in results] == ["SPY", "AAPL", "ZZZ"]
    assert all(r.rows_after == len(nyse_sessions(START, END)) for r in results)
    assert set(refused) == {"BAD", "YYY", "NOPE"}
    assert "BAD.csv: row 1 (line 2), column 'close': 'two' is not a number" in refused["BAD"]
    assert "cannot parse date '2024-03-01x'" in refused["YYY"]
    assert "no file for NOPE" in refused["NOPE"]
    assert cache.symbols() == ["AAPL", "SPY", "YYY", "ZZZ"]
    assert cache.path_for("YYY").read_bytes() == before  # nothing already cached is lost

    with pytest.raises(MalformedFileError, match="BAD.csv"):  # without ``refused`` the first failure raises
        cache.refresh(source, ["AAPL", "BAD"], START, END)


def test_a_source_that_is_down_still_raises(tmp_path: Path) -> None:
    refused: dict[str, str] = {}
    with pytest.raises(SourceUnavailable, match="does not exist"):
        BarCache(tmp_path / "cache", "csv").refresh(CsvSource(tmp_path / "gone"), ["AAA", "BBB"], START, END,
                                                    refused=refused)
    assert refused == {}
