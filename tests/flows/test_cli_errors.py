"""Every failure a user met in issue 7, through the real command line: one line that names the
thing and what to do, exit status 1 (2 for usage errors, as Typer does), no traceback, and
nothing half-written; ``--debug`` shows the traceback instead."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from flows.cli import app
from flows.config import Settings

runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def one_line_error(result: Result, *fragments: str) -> str:
    """The single ``error:`` line of a failed command, checked for ``fragments``."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    text = errors[0]
    for fragment in fragments:
        assert fragment in text, text
    return text


def usage_error(result: Result, option: str, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    text = " ".join(result.output.replace("│", " ").split())
    assert f"Invalid value for {option}" in text, text
    for fragment in fragments:
        assert fragment in text, text


def cached_bars(home: Path) -> list[Path]:
    return sorted((home / "bars").rglob("*.parquet")) if (home / "bars").exists() else []


# -- bad paths ----------------------------------------------------------------------------------


def test_ground_truth_into_a_directory(tmp_path: Path) -> None:
    one_line_error(invoke("data", "ground-truth", "--out", str(tmp_path)),
                   f"{tmp_path} is a directory", "give a file such as")


def test_ground_truth_with_a_suffix_it_cannot_write(tmp_path: Path) -> None:
    one_line_error(invoke("data", "ground-truth", "--out", str(tmp_path / "truth.xlsx")),
                   "write a .parquet or a .csv file", "not .xlsx")
    assert not (tmp_path / "truth.xlsx").exists()


def test_debug_shows_the_traceback_instead(tmp_path: Path) -> None:
    result = invoke("--debug", "data", "ground-truth", "--out", str(tmp_path))
    assert result.exit_code == 1 and isinstance(result.exception, IsADirectoryError)


def test_a_configuration_that_is_a_directory(tmp_path: Path) -> None:
    result = invoke("config", "validate", str(tmp_path))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{tmp_path}: is a directory, not a configuration file" in " ".join(result.output.split())


# -- dates the simulated market does not have ---------------------------------------------------


@pytest.mark.parametrize("args", [("demo", "--today", "2004-06-01"),
                                  ("data", "ground-truth", "--today", "2004-01-01")])
def test_a_today_before_the_simulated_market(args: tuple[str, ...]) -> None:
    usage_error(invoke(*args), "--today", "before the simulated market starts (2005-01-03")


def test_a_reversed_range_on_the_simulated_source(tmp_path: Path) -> None:
    usage_error(invoke("data", "fetch", "--source", "simulated", "--start", "2020-01-01", "--end", "2019-01-01"),
                "--end", "2019-01-01 is before --start 2020-01-01")
    assert cached_bars(Settings().home) == []


def test_a_start_after_today_on_the_simulated_source() -> None:
    one_line_error(invoke("data", "fetch", "--source", "simulated", "--start", "2030-01-01"),
                   "the range ends", "before it starts (2030-01-01)")
    assert cached_bars(Settings().home) == []


def test_a_range_wholly_after_the_simulated_market() -> None:
    one_line_error(invoke("data", "fetch", "--symbols", "AAPL", "--start", "2030-01-01", "--end", "2030-03-01"),
                   "the simulated market runs from 2005-01-03 to", "lies outside it")


# -- homes that cannot hold state ---------------------------------------------------------------


def test_a_home_that_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home.txt"
    home.write_text("not a directory")
    monkeypatch.setenv("STORMWATCH_HOME", str(home))
    one_line_error(invoke("data", "fetch", "--symbols", "SPY"),
                   f"STORMWATCH_HOME {home} is a file, not a directory", "point STORMWATCH_HOME at a directory")
    assert home.read_text() == "not a directory"


def test_a_home_that_cannot_be_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("STORMWATCH_HOME", str(blocker / "home"))
    one_line_error(invoke("archive", "show"), f"STORMWATCH_HOME {blocker / 'home'} cannot be created",
                   "point STORMWATCH_HOME at a writable directory")


# -- databases that refuse us -------------------------------------------------------------------


def test_a_postgresql_server_that_refuses_the_role_leaves_nothing_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORMWATCH_DATABASE_URL", "postgresql+psycopg://nosuchrole@127.0.0.1:5432/test")
    text = one_line_error(invoke("data", "fetch", "--symbols", "AAPL,SPY", "--start", "2024-01-02"),
                          "database postgresql+psycopg://nosuchrole@127.0.0.1:5432/test is unavailable")
    assert len(text) < 400
    assert cached_bars(Settings().home) == []  # the store is reached before any bar is written


# -- unknown sources, uncached data, the network ------------------------------------------------


@pytest.mark.parametrize("command", [("data", "fetch"), ("data", "show", "SPY"), ("archive", "build"),
                                     ("archive", "show"), ("regimes", "show")])
def test_an_unknown_source_is_named_by_every_command(command: tuple[str, ...]) -> None:
    usage_error(invoke(*command, "--source", "foo"), "--source", "unknown source 'foo'", "simulated, bundled")


def test_an_uncached_symbol_lists_what_is_cached_and_the_command_that_fetches_it() -> None:
    assert invoke("data", "fetch", "--symbols", "AAPL,SPY", "--start", "2024-01-02").exit_code == 0
    one_line_error(invoke("data", "show", "MSFT"), "MSFT is not cached for source 'simulated'",
                   "cached: AAPL, SPY (series: ^VIX)",
                   "Fetch it with `stormwatch data fetch --source simulated --symbols MSFT`")


def test_the_bundled_proxy_is_named_when_spy_is_asked_for() -> None:
    assert invoke("data", "fetch", "--source", "bundled").exit_code == 0
    one_line_error(invoke("data", "show", "SPY", "--source", "bundled"),
                   "cached: AAPL, GOOG, IBM, MSFT, ^GSPC (series: ^VIX)",
                   "The bundled source has no SPY; its market proxy is ^GSPC")


def test_an_archive_of_another_source_is_not_shown_in_its_place() -> None:
    assert invoke("archive", "build", "--source", "bundled").exit_code == 0
    one_line_error(invoke("archive", "show"), "no archive has been built from the simulated source",
                   "built from: bundled", "--source bundled")


@pytest.mark.timeout(60)  # a hang guard: offline must fail at once, never wait
def test_yfinance_offline_is_one_short_line_without_warnings() -> None:
    result = invoke("data", "fetch", "--source", "yfinance", "--symbols", "SPY,AAPL", "--start", "2024-03-04",
                    "--end", "2024-03-08")
    if result.exit_code == 0:
        pytest.skip("Yahoo Finance was reachable from this machine, so the offline case did not occur")
    text = one_line_error(result, "Yahoo Finance cannot be reached", "2 symbols (SPY, AAPL) not downloaded",
                          "curl error")
    assert len(text) < 300 and "possibly delisted" not in text
    assert "Warning" not in result.output
    assert cached_bars(Settings().home) == []
