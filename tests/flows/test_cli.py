"""The command line, run in-process with Typer's CliRunner against a temporary STORMWATCH_HOME."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.config import Settings
from market.calendar import nyse_sessions
from memory.store import Store, database_url
from memory.tables import ConfigVersion, DataSnapshot
from tests.conftest import DEFAULT_CONFIG

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_config_validate_prints_version_and_hash() -> None:
    code, out = run("config", "validate", str(DEFAULT_CONFIG))
    assert code == 0, out
    assert "version 1.0.0, content hash " in out and "76 symbols, 8 archive events" in out


def test_config_validate_names_the_bad_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEFAULT_CONFIG.read_text().replace("regime: recovery", "regime: bounce", 1))
    code, out = run("config", "validate", str(bad))
    assert code == 2
    assert "memory.archive.events[5].regime" in " ".join(out.split()) and "'bounce'" in out


@pytest.fixture
def csv_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "mine"
    folder.mkdir()
    sessions = nyse_sessions("2024-01-02", "2024-03-28")
    close = np.linspace(50, 60, len(sessions))
    for symbol in ("AAPL", "SPY"):
        pd.DataFrame({"Date": sessions, "Open": close, "High": close + 1, "Low": close - 1, "Close": close,
                      "Volume": 1e6}).to_csv(folder / f"{symbol}.csv", index=False)
    pd.DataFrame({"date": sessions, "close": np.linspace(14, 22, len(sessions))}).to_csv(
        folder / "^VIX.csv", index=False)
    return folder


def test_fetch_your_own_files_then_show_them(csv_dir: Path) -> None:
    code, out = run("data", "fetch", "--source", "csv", "--csv-dir", str(csv_dir), "--symbols", "aapl,SPY",
                    "--start", "2024-01-02", "--end", "2024-03-28")
    assert code == 0, out
    assert "AAPL" in out and "Data is real: user files in" in out
    code, out = run("data", "show", "AAPL", "--source", "csv", "--rows", "3")
    assert code == 0, out
    assert f"{len(nyse_sessions('2024-01-02', '2024-03-28'))} sessions, 2024-01-02 to 2024-03-28, 0 missing sessions" in out
    assert "2024-03-28" in out and "2024-03-25" not in out
    settings = Settings()
    with Store(database_url(settings.home)) as store, store.session() as session:
        assert len(session.exec(ConfigVersion.__table__.select()).all()) == 1
        assert {row.symbol for row in session.exec(DataSnapshot.__table__.select()).all()} == {"AAPL", "SPY"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("data", "show", "../etc"), "unsafe symbol"),
        (("data", "show", "ZZZ"), "nothing is cached for source 'simulated'"),
        (("data", "fetch", "--source", "csv", "--symbols", "AAPL"), "needs a directory"),
        (("data", "fetch", "--source", "nowhere"), "unknown source 'nowhere'"),
        (("data", "fetch", "--start", "03/01/2020"), "is not a date like"),
        (("features", "list", "--family", "astrology"), "no feature family 'astrology'"),
        (("archive", "show"), "no archive has been built yet"),
    ],
)
def test_bad_input_is_a_clear_error(args: tuple[str, ...], message: str) -> None:
    code, out = run(*args)
    assert code != 0
    assert message in " ".join(out.split())


def test_a_malformed_csv_is_named_with_its_row(csv_dir: Path) -> None:
    text = (csv_dir / "AAPL.csv").read_text().splitlines()
    text[5] = text[5].replace(text[5].split(",")[4], "n/a", 1)
    (csv_dir / "AAPL.csv").write_text("\n".join(text))
    code, out = run("data", "fetch", "--source", "csv", "--csv-dir", str(csv_dir), "--symbols", "AAPL")
    assert code == 1
    assert "AAPL.csv" in out and "n/a" in out


def test_features_list() -> None:
    code, out = run("features", "list", "--family", "volatility")
    assert code == 0
    assert "garman_klass_20" in out and "rsi_14" not in out


def test_demo_then_archive_build_and_show() -> None:
    code, out = run("demo", "--today", "2024-01-31")
    assert code == 0, out
    for expected in ("Information Technology", "2008 financial crisis", "2023 banking crisis", "crash", "peak VIX",
                     "the causal labeler's reading", "The rare-event archive 1.1.0 (built)"):
        assert expected in out
    settings = Settings()
    assert len(list((settings.cache_dir / "simulated").glob("*.parquet"))) == 77
    assert (settings.reports_dir / "regimes-simulated.png").exists()
    code, out = run("demo", "--today", "2024-01-31")
    assert code == 0 and "The rare-event archive 1.1.0 (unchanged)" in out

    code, out = run("archive", "build")
    assert code == 0 and "unchanged, nothing rebuilt" in out
    code, out = run("archive", "show")
    assert code == 0, out
    assert "samples per regime: crash" in out and "versions from simulated: 1.1.0" in out

    code, out = run("regimes", "show", "--spells", "3", "--no-plot")
    assert code == 0, out
    assert "Regimes of the simulated market proxy, 2005-01-03 to 2024-01-31" in out
    assert "fall >= 15% in 10 sessions" in " ".join(out.split())
    assert (settings.reports_dir / "regimes-simulated.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ground_truth_export(tmp_path: Path) -> None:
    out = tmp_path / "truth.parquet"
    code, text = run("data", "ground-truth", "--out", str(out), "--today", "2012-12-31")
    assert code == 0, text
    truth = pd.read_parquet(out)
    assert list(truth.columns) == ["date", "symbol", "regime", "expected_excess_return", "oracle_direction"]
    assert set(truth["oracle_direction"].dropna().unique()) <= {-1.0, 1.0}
    assert truth["symbol"].nunique() == 76
    crisis = truth[(truth["date"] >= "2008-10-01") & (truth["date"] <= "2008-10-31")]
    assert (crisis["regime"] == "crash").all()


def test_real_bundled_history_end_to_end() -> None:
    """Real data offline: the archive has the events the history covers and says which it lacks;
    the regime labeler falls back to realised volatility where the VIX is missing."""
    code, out = run("data", "fetch", "--source", "bundled")
    assert code == 0, out
    assert "Data is real" in out and "^GSPC" in out
    code, out = run("archive", "build", "--source", "bundled")
    assert code == 0, out
    text = " ".join(out.split())
    assert "2008 financial crisis" in text and "No samples for 6 event(s)" in text
    code, out = run("regimes", "show", "--source", "bundled", "--no-plot")
    assert code == 0, out
    assert "realised-volatility fallback labelled them" in " ".join(out.split())
