"""The configuration: every SPEC.md default present, and every bad file refused by key."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.config import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    HomeUnavailable,
    Settings,
    load_config,
    parse_config,
    resolve_config_path,
)
from market.vocabulary import Regime, Sector
from tests.conftest import DEFAULT_CONFIG

RAW = yaml.safe_load(DEFAULT_CONFIG.read_text())


def broken(mutate: Callable[[dict[str, Any]], None]) -> str:
    """The message of the ConfigError raised by the default file after ``mutate``."""
    raw = copy.deepcopy(RAW)
    mutate(raw)
    with pytest.raises(ConfigError) as error:
        parse_config(yaml.safe_dump(raw), source="broken.yaml")
    return str(error.value)


def test_default_file_holds_the_spec_numbers() -> None:
    config = load_config().config
    events = config.memory.archive.events
    assert config.memory.archive.version == "1.1.0"
    assert [(e.name, e.start, e.end, e.regime, e.weight) for e in events][0] == (
        "2008 financial crisis", date(2008, 9, 1), date(2009, 3, 31), Regime.CRASH, 0.20)
    assert [e.weight for e in events] == [0.20, 0.15, 0.15, 0.20, 0.10, 0.10, 0.05, 0.05]
    assert len(config.market.universe.members) == 76
    assert {m.sector for m in config.market.universe.members} == set(Sector)
    rules = config.monitors.regimes
    assert (rules.vix_crash_above, rules.vix_high_volatility_from, rules.vix_normal_from) == (35, 25, 15)
    assert (rules.crash_drop, rules.crash_drop_sessions, rules.recovery_rise) == (0.15, 10, 0.10)
    assert config.models.sampling.targets == {
        Regime.LOW_VOLATILITY: 0.2, Regime.NORMAL: 0.4, Regime.HIGH_VOLATILITY: 0.2,
        Regime.CRASH: 0.1, Regime.RECOVERY: 0.1}
    assert config.models.weights == {
        Regime.CRASH: 2.0, Regime.RECOVERY: 1.5, Regime.HIGH_VOLATILITY: 1.3,
        Regime.NORMAL: 1.0, Regime.LOW_VOLATILITY: 0.8}
    assert config.memory.replay.worst_fraction == 0.05
    assert len(config.models.zoo) == 9  # the eight of SPEC.md and regime_aware (issue 13)
    assert config.flows.retrain_schedule.cron == "0 21 * * 6"
    assert config.flows.retrain_schedule.timezone == "America/New_York"


def test_content_hash_follows_values_not_formatting() -> None:
    text = DEFAULT_CONFIG.read_text()
    reformatted = "# a comment that changes nothing\n" + yaml.safe_dump(yaml.safe_load(text))
    assert parse_config(text).content_hash() == parse_config(reformatted).content_hash()
    changed = copy.deepcopy(RAW)
    changed["market"]["labels"]["horizon"] = 10
    assert parse_config(yaml.safe_dump(changed)).content_hash() != parse_config(text).content_hash()
    loaded = load_config()
    assert loaded.version == "1.0.0" and len(loaded.content_hash) == 64


@pytest.mark.parametrize(
    ("mutate", "key", "problem"),
    [
        (lambda r: r.update(surprise=1), "surprise", "Extra inputs are not permitted"),
        (lambda r: r["market"]["labels"].update(horizn=5), "market.labels.horizn", "Extra inputs"),
        (lambda r: r["memory"]["archive"]["events"][2].update(regime="bear"),
         "memory.archive.events[2].regime", "'bear'"),
        (lambda r: r["memory"]["archive"]["events"][1].update(end=date(2011, 6, 1)),
         "memory.archive.events[1]", "end 2011-06-01 precedes start 2011-07-01"),
        (lambda r: r["memory"]["archive"]["events"][0].update(weight=0.3),
         "memory.archive", "event weights must sum to 1, but sum to 1.1"),
        (lambda r: r["models"]["sampling"]["targets"].update(crash=0.2),
         "models.sampling", "sampling targets must sum to 1"),
        (lambda r: r["models"]["sampling"]["targets"].pop("recovery"),
         "models.sampling", "lack a value for: recovery"),
        (lambda r: r["models"]["weights"].update(crash=-2.0), "models.weights", "must be positive"),
        (lambda r: r["models"]["weights"].update(panic=3.0), "models.weights.panic", "'panic'"),
        (lambda r: r["monitors"]["regimes"].update(vix_normal_from=30), "monitors.regimes",
         "VIX thresholds must satisfy"),
        (lambda r: r["market"]["universe"]["members"][3].update(symbol="../etc"),
         "market.universe.members[3].symbol", "unsafe symbol '../etc'"),
        (lambda r: r["market"]["universe"]["members"].append({"symbol": "AAPL", "sector": "Energy"}),
         "market.universe", "listed more than once: AAPL"),
        (lambda r: r["flows"]["retrain_schedule"].update(timezone="Mars/Olympus"),
         "flows.retrain_schedule.timezone", "unknown time zone"),
        (lambda r: r["market"]["labels"].update(horizon="five"), "market.labels.horizon", "integer"),
        (lambda r: r.update(version="one"), "version", "not MAJOR.MINOR.PATCH"),
        (lambda r: r.pop("memory"), "memory", "Field required"),
    ],
)
def test_a_bad_value_is_refused_naming_its_key(mutate, key: str, problem: str) -> None:
    message = broken(mutate)
    assert message.startswith("broken.yaml: ")
    assert f"  {key}: " in message
    assert problem in message


def test_every_error_is_listed_not_only_the_first() -> None:
    def two_faults(raw: dict[str, Any]) -> None:
        raw["market"]["labels"]["horizon"] = 0
        raw["models"]["validation"]["n_splits"] = 1

    message = broken(two_faults)
    assert "2 invalid settings" in message
    assert "market.labels.horizon" in message and "models.validation.n_splits" in message


def test_duplicate_keys_are_refused_with_their_line() -> None:
    text = DEFAULT_CONFIG.read_text().replace("  horizon: 5", "  horizon: 5\n    horizon: 10", 1)
    with pytest.raises(ConfigError, match=r"duplicate key 'horizon' at line \d+"):
        parse_config(text)


def test_malformed_yaml_and_missing_files_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_config("market: [unclosed")
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_config("- just a list")
    with pytest.raises(ConfigError, match="cannot read the configuration"):
        load_config(tmp_path / "absent.yaml")


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STORMWATCH_HOME", str(tmp_path))
    monkeypatch.setenv("STORMWATCH_DATABASE_URL", "postgresql+psycopg://u@h/db")
    settings = Settings()
    assert settings.home == tmp_path and settings.cache_dir == tmp_path / "bars"
    assert settings.database_url == "postgresql+psycopg://u@h/db"


# -- which file, and where state lives ----------------------------------------------------------


def test_the_default_file_ships_inside_the_package() -> None:
    from importlib import resources

    packaged = resources.files("flows").joinpath("stormwatch.yaml")
    assert packaged.is_file() and DEFAULT_CONFIG_PATH == Path(str(packaged)) == DEFAULT_CONFIG
    assert load_config().origin == "packaged default"


def test_the_precedence_is_option_then_environment_then_working_directory_then_package(tmp_path: Path) -> None:
    given, env = tmp_path / "given.yaml", tmp_path / "env.yaml"
    assert resolve_config_path(given, env, cwd=tmp_path) == (given, "--config")
    assert resolve_config_path(None, env, cwd=tmp_path) == (env, "STORMWATCH_CONFIG")
    assert resolve_config_path(None, None, cwd=tmp_path) == (DEFAULT_CONFIG_PATH, "packaged default")
    (tmp_path / "stormwatch.yaml").mkdir()  # a directory of that name is not a configuration
    assert resolve_config_path(None, None, cwd=tmp_path)[1] == "packaged default"
    (tmp_path / "stormwatch.yaml").rmdir()
    (tmp_path / "stormwatch.yaml").write_text("version: 1.0.0\n")
    assert resolve_config_path(None, None, cwd=tmp_path) == (tmp_path / "stormwatch.yaml", "working directory")
    assert resolve_config_path(None, env, cwd=tmp_path)[1] == "STORMWATCH_CONFIG"


def test_a_home_that_cannot_hold_state_is_refused_by_name(tmp_path: Path) -> None:
    assert Settings(home=tmp_path / "new" / "home").check_home() == tmp_path / "new" / "home"
    assert not (tmp_path / "new").exists()  # checking creates nothing
    (tmp_path / "file").write_text("")
    with pytest.raises(HomeUnavailable, match=r"STORMWATCH_HOME .*file is a file, not a directory"):
        Settings(home=tmp_path / "file").check_home()
    with pytest.raises(HomeUnavailable, match=r"cannot be created \(.*file is not a writable directory\)"):
        Settings(home=tmp_path / "file" / "home").check_home()


def test_a_file_without_a_models_section_trains_the_packaged_models() -> None:
    """The packaged file's models section is the defaults: a user's file that leaves it out (or
    any key of it) gets the zoo and storm members the packaged file names, not a quieter model."""
    from models.config import ModelsConfig

    assert load_config().config.models == ModelsConfig()
    assert ModelsConfig().validation.ensemble_storm_members == ["regime_aware"]


def test_a_trimmed_zoo_without_the_default_storm_member_says_how_to_fix_it() -> None:
    def trim(raw: dict[str, Any]) -> None:
        raw["models"]["zoo"] = {"lightgbm": raw["models"]["zoo"]["lightgbm"]}
        del raw["models"]["validation"]["ensemble_storm_members"]

    message = broken(trim)
    assert "ensemble_storm_members names ['regime_aware'] (its default)" in message, message
    assert "or null for no storm members" in message, message
