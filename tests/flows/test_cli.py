"""The command line, run in-process with Typer's CliRunner against a temporary STORMWATCH_HOME."""

from __future__ import annotations

import re
from collections.abc import Callable
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
    code, out = run("demo", "--today", "2024-01-31", "--no-story")
    assert code == 0, out
    for expected in ("Information Technology", "2008 financial crisis", "2023 banking crisis", "crash", "peak VIX",
                     "the causal labeler's reading", "The rare-event archive 1.1.0 (built)"):
        assert expected in out
    settings = Settings()
    assert len(list((settings.cache_dir / "simulated").glob("*.parquet"))) == 77
    assert (settings.reports_dir / "regimes-simulated.png").exists()
    code, out = run("demo", "--today", "2024-01-31", "--no-story")
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


@pytest.mark.parametrize(("name", "read"), [("truth.parquet", pd.read_parquet), ("gt.csv", pd.read_csv)])
def test_ground_truth_export(tmp_path: Path, name: str, read: Callable[[Path], pd.DataFrame]) -> None:
    out = tmp_path / name  # the suffix chooses the format
    code, text = run("data", "ground-truth", "--out", str(out), "--today", "2012-12-31")
    assert code == 0, text
    truth = read(out)
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


# -- issue 7: configuration that travels, one set of options, data show, the small things -------


def test_config_validate_in_a_folder_reads_that_folders_file(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out = run("config", "init")
    assert code == 0, out
    local = tmp_path / "stormwatch.yaml"
    assert local.read_text() == DEFAULT_CONFIG.read_text()
    code, out = run("config", "init")
    assert code == 1 and "already exists" in out
    local.write_text(local.read_text().replace("regime: recovery", "regime: bounce", 1))
    code, out = run("config", "validate")
    assert code == 2 and str(local) in " ".join(out.split()) and "'bounce'" in out
    code, out = run("config", "show", "-c", str(DEFAULT_CONFIG))
    assert code == 0 and "chosen by: --config" in out and "content hash" in out


def test_config_show_names_the_environments_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text(DEFAULT_CONFIG.read_text())
    monkeypatch.setenv("STORMWATCH_CONFIG", str(mine))
    code, out = run("config", "show")
    assert code == 0, out
    assert f"configuration {mine}" in out and "chosen by: STORMWATCH_CONFIG" in out


def test_every_market_command_takes_the_same_options(csv_dir: Path) -> None:
    from typer.main import get_command

    root = get_command(app)
    market = {"--source", "--csv-dir", "--symbols", "--start", "--end", "--config"}
    for group, name in (("data", "fetch"), ("archive", "build"), ("regimes", "show")):
        command = root.commands[group].commands[name]
        options = {opt for param in command.params for opt in param.opts}
        assert market <= options, (group, name, market - options)
    show = root.commands["archive"].commands["show"]
    assert {"--source", "-c", "--config"} <= {opt for param in show.params for opt in param.opts}
    # --csv-dir alone selects the csv source, for archive build and regimes show as for fetch.
    code, out = run("regimes", "show", "--csv-dir", str(csv_dir), "--symbols", "AAPL", "--no-plot")
    assert code == 0, out
    assert "Regimes of the csv market proxy, 2024-01-02 to 2024-03-28" in out
    code, out = run("archive", "build", "--csv-dir", str(csv_dir), "--symbols", "AAPL")
    assert code == 1, out  # the features need a longer history than these 61 sessions, and say so
    assert "the csv bars hold 61 sessions (2024-01-02 to 2024-03-28); the features need more than" in out


def test_every_help_summary_is_one_whole_sentence() -> None:
    from typer.main import get_command

    def commands(group: object, path: str = "stormwatch") -> list[tuple[str, str]]:
        found = []
        for name, command in getattr(group, "commands", {}).items():
            found.append((f"{path} {name}", (command.help or "").split("\n\n")[0]))
            found.extend(commands(command, f"{path} {name}"))
        return found

    mine = ("data", "config", "archive", "features", "regimes", "demo")  # issue 7's commands
    listed = [(n, s) for n, s in commands(get_command(app)) if n.split()[1] in mine]
    assert len(listed) >= 12
    for name, summary in listed:
        assert summary and "\n" not in summary.strip() and summary.strip().endswith("."), (name, summary)


def test_archive_show_shows_the_archive_of_the_source_it_is_given(tmp_path: Path) -> None:
    for source in ("bundled", "simulated", "bundled"):
        assert run("archive", "build", "--source", source, "--end", "2012-12-31")[0] == 0
    code, out = run("archive", "show", "--source", "bundled")
    assert code == 0, out
    assert "(bundled)" in out and "versions from bundled: 1.1.0 " in out and "simulated" not in out
    code, out = run("archive", "show", "--source", "simulated")
    assert code == 0 and "(simulated)" in out and "versions from simulated: 1.1.0+" in out


def test_the_bundled_fetch_counts_its_own_universe() -> None:
    code, out = run("archive", "build", "--source", "bundled")
    assert code == 0, out
    assert "5/5" in out and "/77" not in out


def test_data_show_shows_the_vix_and_a_date_window() -> None:
    code, out = run("data", "fetch", "--symbols", "AAPL", "--start", "2024-01-02", "--end", "2024-02-29")
    assert code == 0, out
    code, out = run("data", "show", "^VIX", "--rows", "2")
    assert code == 0, out
    assert "^VIX (simulated): 41 values, 2024-01-02 to 2024-02-29, 0 missing sessions" in out
    code, out = run("data", "show", "aapl", "--start", "2024-02-01", "--end", "2024-02-09")
    assert code == 0 and "AAPL (simulated): 7 sessions, 2024-02-01 to 2024-02-09" in out


def test_a_simulated_range_cut_to_what_is_simulated_says_so() -> None:
    code, out = run("data", "fetch", "--symbols", "SPY", "--start", "2024-01-02", "--end", "2035-01-01")
    assert code == 0, out
    text = " ".join(out.split())
    assert text.count("Note: the simulated market ends on ") == 1
    assert "live sessions after " in text and "the range is cut there instead of ending on 2035-01-01" in text


def test_features_family_in_any_case_and_singular_sessions() -> None:
    code, out = run("features", "list", "--family", "Volatility")
    assert code == 0 and "garman_klass_20" in out
    code, out = run("features", "list", "--family", "MACRO")
    assert code == 0 and "vix" in out.lower()
    code, out = run("features", "list")
    assert code == 0 and "1 sessions" not in out and "over the last 1 session" in " ".join(out.split())


def test_a_demo_early_in_the_history_shows_no_nan() -> None:
    code, out = run("demo", "--today", "2010-01-04", "--no-story")
    assert code == 0, out
    assert re.search(r"\bnan\b", out, re.IGNORECASE) is None
    assert "2023 banking crisis" in out


def own_folder(folder: Path, symbols: tuple[str, ...] = ("SPY", "AAA", "BBB", "CCC")) -> Path:
    """Four years of random-walk bars per symbol, as a user would export them, and no VIX."""
    folder.mkdir()
    sessions = nyse_sessions("2018-01-02", "2021-12-31")
    rng = np.random.default_rng(3)
    for symbol in symbols:
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.012, len(sessions))))
        pd.DataFrame({"Date": sessions, "Open": close, "High": close * 1.01, "Low": close * 0.99, "Close": close,
                      "Volume": rng.integers(500_000, 2_000_000, len(sessions))}).to_csv(
            folder / f"{symbol}.csv", index=False)
    return folder


def test_a_folder_without_a_vix_fetches_labels_regimes_and_builds_the_archive(tmp_path: Path) -> None:
    folder = own_folder(tmp_path / "mine")
    common = ("--csv-dir", str(folder), "--start", "2018-01-02")
    code, out = run("data", "fetch", *common)
    text = " ".join(out.split())
    assert code == 0, out
    assert "no VIX file in" in text and "21-session realised volatility of the market proxy (HAR map" in text
    assert text.count("no VIX file") == 1 and "VIX: none, the realised-volatility fallback" in text
    assert "no sector for AAA, BBB, CCC" in text
    settings = Settings()
    assert sorted(p.stem for p in (settings.cache_dir / "csv").glob("*.parquet")) == ["AAA", "BBB", "CCC", "SPY"]
    with Store(database_url(settings.home)) as store, store.session() as session:
        snapshots = {row.symbol: row for row in session.exec(DataSnapshot.__table__.select()).all()}
    assert set(snapshots) == {"SPY", "AAA", "BBB", "CCC", "^VIX"} and snapshots["^VIX"].rows == 0

    code, out = run("regimes", "show", *common, "--no-plot", "--spells", "2")
    assert code == 0, out
    assert "The VIX was missing on 1,008 sessions" in out

    code, out = run("archive", "build", *common)
    assert code == 0, out
    from flows.archive import open_archive

    archive = open_archive(settings)
    try:
        samples = archive.load()
    finally:
        archive.store.dispose()
    assert len(samples) > 0 and set(samples["event"]) >= {"2020 COVID crash"}
    assert (samples["vix_is_fallback"] == 1.0).all()
    assert set(samples.index.get_level_values("symbol")) == {"AAA", "BBB", "CCC"}


def test_a_bad_file_among_good_ones_caches_the_good_names_the_bad_and_exits_1(tmp_path: Path) -> None:
    folder = own_folder(tmp_path / "mine", ("SPY", "AAA", "BBB"))
    lines = (folder / "BBB.csv").read_text().splitlines()
    lines[7] = lines[7].replace(lines[7].split(",")[4], "oops", 1)
    (folder / "BBB.csv").write_text("\n".join(lines))
    code, out = run("data", "fetch", "--csv-dir", str(folder), "--start", "2018-01-02")
    text = " ".join(out.split())
    assert code == 1, out
    assert "1 refused" in text and "BBB.csv" in text and "row 7 (line 8)" in text and "'oops' is not a number" in text
    assert "error: 1 of 3 symbols refused (BBB); the rest are cached" in text
    assert sorted(p.stem for p in (Settings().cache_dir / "csv").glob("*.parquet")) == ["AAA", "SPY"]
    code, out = run("archive", "build", "--csv-dir", str(folder), "--start", "2018-01-02")
    assert code == 1 and "1 of 3 symbols refused" in " ".join(out.split())
