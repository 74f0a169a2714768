"""The whole configuration: each room's section composed into one validated, hashed file.

``stormwatch.yaml`` is the single place every number of SPEC.md lives. Loading it checks every
key against the rooms' pydantic models and fails with errors that name the key, so a typo never
silently falls back to a default. Its content hash (of the validated values, not the file's
bytes, so comments and formatting do not change it) and version travel with every run.

The default file ships inside the package (``flows/stormwatch.yaml``), so an installed wheel
finds it wherever it runs. Which file a command reads (:func:`resolve_config_path`): the one
given with ``--config``, else ``STORMWATCH_CONFIG``, else ``./stormwatch.yaml`` in the working
directory, else the packaged default. ``stormwatch config init`` writes an editable copy.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from market.checks import SemVer
from market.config import MarketConfig
from memory.config import MemoryConfig
from models.config import ModelsConfig
from monitors.config import MonitorsConfig

#: The default configuration, shipped inside the ``flows`` package (so an installed wheel has it).
DEFAULT_CONFIG_PATH = Path(str(resources.files("flows").joinpath("stormwatch.yaml")))

#: The file name looked for in the working directory.
LOCAL_CONFIG_NAME = "stormwatch.yaml"

#: Where the configuration came from, in the order a command looks (first found wins).
ConfigOrigin = Literal["--config", "STORMWATCH_CONFIG", "working directory", "packaged default"]


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and every bad key."""


class HomeUnavailable(OSError):
    """``STORMWATCH_HOME`` cannot hold Stormwatch's state (a file, or a directory that cannot be made)."""


def resolve_config_path(
    explicit: Path | None, environment: Path | None, *, cwd: Path | None = None
) -> tuple[Path, ConfigOrigin]:
    """The configuration file a command reads and why: ``--config`` > ``STORMWATCH_CONFIG`` >
    ``./stormwatch.yaml`` > the packaged default.

    >>> resolve_config_path(Path("mine.yaml"), Path("env.yaml"))
    (PosixPath('mine.yaml'), '--config')
    >>> resolve_config_path(None, None, cwd=Path("/nonexistent"))[1]
    'packaged default'
    """
    if explicit is not None:
        return explicit, "--config"
    if environment is not None:
        return environment, "STORMWATCH_CONFIG"
    local = (cwd or Path.cwd()) / LOCAL_CONFIG_NAME
    if local.is_file():
        return local, "working directory"
    return DEFAULT_CONFIG_PATH, "packaged default"


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cron: str = "0 21 * * 6"
    timezone: str = "America/New_York"

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError(f"cron {value!r} must have five fields (minute hour day month weekday)")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class TaskRunnerConfig(BaseModel):
    """Where a flow's tasks run (``flows.runners`` builds the Prefect task runner from it).

    ``kind: threads`` runs them in the flow's process (``models.training.max_parallel_members``
    at once); ``kind: dask`` hands them to prefect-dask's ``DaskTaskRunner``: the cluster at
    ``address`` when given (``tcp://host:8786``, started elsewhere), else a local cluster of
    ``n_workers`` processes with ``threads_per_worker`` threads each, started for the run.
    Typed fields rather than the runner's own kwargs: ``DaskTaskRunner`` takes loosely typed
    nested dicts (``cluster_kwargs``), and a typo there would only surface when a run starts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["threads", "dask"] = "threads"
    address: str | None = None
    n_workers: int = Field(2, ge=1)
    threads_per_worker: int = Field(1, ge=1)

    @field_validator("address")
    @classmethod
    def _scheduler_address(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value:
            raise ValueError(f"address {value!r} must name a Dask scheduler, such as tcp://127.0.0.1:8786")
        return value


class AlertsConfig(BaseModel):
    """Where the alert automations notify (``stormwatch alerts install``).

    No URL: the automations are still created (they show in the Prefect UI, with the event feed
    behind them) but send nothing, and the install says so."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook_url: str | None = None

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"webhook_url {value!r} must be an http:// or https:// URL")
        return value


class FlowsConfig(BaseModel):
    """Orchestration: when retraining runs and how often the monitor polls, where tasks run,
    where alerts go. ``prefect.yaml`` is generated from these values (``flows.serve``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retrain_schedule: Schedule = Schedule()
    monitor_interval_minutes: int = Field(30, ge=1)
    # A burst of drift and rare-event events inside this window starts one retraining.
    retrain_cooldown_minutes: int = Field(60, ge=1)
    work_pool: str = Field("stormwatch", pattern=r"^[a-z0-9][a-z0-9-]*$")
    task_runner: TaskRunnerConfig = TaskRunnerConfig()
    alerts: AlertsConfig = AlertsConfig()


class StormwatchConfig(BaseModel):
    """The validated content of ``stormwatch.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: SemVer
    market: MarketConfig
    memory: MemoryConfig
    monitors: MonitorsConfig = MonitorsConfig()
    models: ModelsConfig = ModelsConfig()
    flows: FlowsConfig = FlowsConfig()

    def content_hash(self) -> str:
        """sha256 of the validated values in canonical JSON: equal configurations hash equal."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class LoadedConfig:
    """A validated configuration and where it came from, as recorded with every run."""

    config: StormwatchConfig
    path: Path
    content_hash: str
    origin: ConfigOrigin | Literal["given"] = "given"

    @property
    def version(self) -> str:
        return self.config.version


class _StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys: PyYAML would keep the last one silently."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            mark = key_node.start_mark
            raise ConfigError(
                f"duplicate key {key!r} at line {mark.line + 1}, column {mark.column + 1}"
            )
        seen[key] = loader.construct_object(value_node, deep=True)
    return seen


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        # Drop pydantic's internal step names such as "function-after[...]" from the path.
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and "[" in p))
        message = item["msg"].removeprefix("Value error, ")
        got = item.get("input")
        shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
        lines.append(f"  {_key_path(loc)}: {message}{shown}")
    return "\n".join(lines)


def parse_config(text: str, *, source: str = "<string>") -> StormwatchConfig:
    """Validate YAML ``text``; raise :class:`ConfigError` naming ``source`` and each bad key."""
    try:
        raw = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level")
    try:
        return StormwatchConfig.model_validate(raw)
    except ValidationError as exc:
        count = exc.error_count()
        raise ConfigError(
            f"{source}: {count} invalid setting{'s' if count > 1 else ''}:\n{_describe(exc)}"
        ) from None


def load_config(path: Path | str | None = None, *, origin: ConfigOrigin | None = None) -> LoadedConfig:
    """Load and validate a configuration file (the packaged default when ``path`` is ``None``).

    ``origin`` records why this file was chosen (see :func:`resolve_config_path`)."""
    file = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    try:
        text = file.read_text(encoding="utf-8")
    except IsADirectoryError:
        raise ConfigError(f"{file}: is a directory, not a configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the configuration: {exc.strerror}") from None
    config = parse_config(text, source=str(file))
    return LoadedConfig(config=config, path=file, content_hash=config.content_hash(),
                        origin=origin or ("packaged default" if path is None else "given"))


class Settings(BaseSettings):
    """Where state lives, from the environment: the one place Stormwatch reads ``os.environ``."""

    model_config = SettingsConfigDict(env_prefix="STORMWATCH_", env_ignore_empty=True, extra="ignore")

    home: Path = Path(".stormwatch")
    database_url: str | None = None
    config: Path | None = None

    def check_home(self) -> Path:
        """``home`` if Stormwatch can keep its state there (it need not exist yet); else raise
        :class:`HomeUnavailable` naming ``STORMWATCH_HOME``. Creates nothing."""
        home = self.home.expanduser()
        if home.exists():
            if not home.is_dir():
                raise HomeUnavailable(f"STORMWATCH_HOME {home} is a file, not a directory: "
                                      "point STORMWATCH_HOME at a directory")
            if not os.access(home, os.W_OK | os.X_OK):
                raise HomeUnavailable(f"STORMWATCH_HOME {home} is not writable: "
                                      "point STORMWATCH_HOME at a writable directory")
            return home
        parent = home.absolute().parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise HomeUnavailable(f"STORMWATCH_HOME {home} cannot be created ({parent} is not a writable "
                                  "directory): point STORMWATCH_HOME at a writable directory")
        return home

    @property
    def cache_dir(self) -> Path:
        return self.home / "bars"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"
