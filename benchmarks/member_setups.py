"""Compare setups of one zoo member on development markets, each setup as the whole zoo.

``python -m benchmarks.member_setups --seeds 20 --setup 'vix-40={"knots": {"vix_level": [20, 30, 40]}}'``

Design choices are made on development markets (seeds from ``quality.DEVELOPMENT_SEED``), never
on the evaluation seeds whose figures ``quality.json`` holds. The full benchmark takes about four
minutes a market; one member as the whole zoo (so it is the served ensemble, the only storm
member, the ablation member and the replay's model) takes about 16 s, so twenty markets take
about 3 minutes a setup two at a time. Twenty, not eight: a member's storm edge share swings by tens of
points between markets (issue 13, stop 21: a setup that took 62% of the COVID crash's edge on
development markets 1 to 8 took 6% on the first ten evaluation seeds).

Each ``--setup NAME=JSON`` replaces keywords of ``models.zoo.<member>.kwargs``; the configured
setup always runs first, as ``configured``. Printed per setup: the served edge share (as
``quality.summarise``: mean accuracy over markets against the oracle's) on each storm test set,
their mean and their worst; then the served member minus the same member on the window alone on
the live test's calm rows (true and labeler regimes), where a storm state that stays on too long
costs. ``--jobs`` markets run side by side. ``--csv`` keeps every per-market record.
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # as in benchmarks.quality: no spinning threads on a shared machine
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks import quality
from flows.config import StormwatchConfig, load_config
from models.zoo import ZooConfigError

#: The storm test sets and regimes a setup is judged on (the labeler's regimes).
STORM_CELLS: tuple[tuple[str, str], ...] = (
    ("held-out 2008 financial crisis", "crash"),
    ("held-out 2018 Volmageddon", "crash"),
    ("held-out 2020 COVID crash", "crash"),
    ("held-out 2020 COVID recovery", "crash"),
    ("held-out 2020 COVID recovery", "recovery"),
    ("live storm after today", "crash"),
    ("live storm after today", "recovery"),
)
CONFIGURED = "configured"


def parse_setup(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME=JSON`` (a JSON object of keyword arguments) as (name, keywords), or a clear error."""
    name, sep, body = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"--setup {text!r}: expected NAME={{json keywords}}")
    try:
        kwargs = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--setup {name}: not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(kwargs, dict):
        raise ValueError(f"--setup {name}: expected a JSON object of keyword arguments, got {type(kwargs).__name__}")
    return name.strip(), kwargs


def with_member_setup(base: StormwatchConfig, member: str, kwargs: Mapping[str, Any], name: str) -> StormwatchConfig:
    """``base`` whose ``member`` has ``kwargs`` over its configured keywords and serves storms alone.
    The member is built once here, so a keyword it does not take fails before any market is run."""
    zoo = dict(base.models.zoo)
    if member not in zoo:
        raise ValueError(f"--member {member!r} is not in models.zoo ({', '.join(zoo)})")
    spec = zoo[member].model_copy(update={"kwargs": {**zoo[member].kwargs, **kwargs}})
    try:
        spec.build(where=f"setup {name}: models.zoo.{member}")
    except ZooConfigError as exc:
        raise ValueError(str(exc)) from None
    zoo[member] = spec
    validation = base.models.validation.model_copy(update={"ensemble_storm_members": [member]})
    models = base.models.model_copy(update={"zoo": zoo, "validation": validation})
    return base.model_copy(update={"models": models})


def _markets_with(seeds: Sequence[dict[str, Any]], test: str, regime: str) -> int:
    """How many markets have served rows in the cell (the labeler finds a live recovery in few)."""
    return sum(any(r["test"] == test and r["regime"] == regime and r["variant"] == quality.ENSEMBLE
                   and r["regime_source"] == "labeler" and r["n"] > 0 for r in run["records"]) for run in seeds)


def edge_table(runs: Mapping[str, list[dict[str, Any]]]) -> pd.DataFrame:
    """Per setup (rows): the served edge share on each storm cell, their mean and their worst. A
    cell that fewer than half the markets have is shown, named with its count, but left out of the
    mean and the worst: two markets' recovery sessions would outvote twenty markets' crashes."""
    out = {}
    for name, seeds in runs.items():
        table = quality.summarise(seeds)
        served = table.loc[(table["variant"] == quality.ENSEMBLE) & (table["regime_source"] == "labeler")]
        cells, judged = {}, []
        for test, regime in STORM_CELLS:
            hit = served.loc[(served["test"] == test) & (served["regime"] == regime), "edge_share"]
            if hit.empty:
                continue
            label = f"{test.removeprefix('held-out ')}: {regime}"
            markets = _markets_with(seeds, test, regime)
            if 2 * markets < len(seeds):
                label += f" ({markets} of {len(seeds)} markets)"
            else:
                judged.append(label)
            cells[label] = float(hit.iloc[0])
        row = pd.Series(cells, dtype="float64")
        out[name] = pd.concat([row, pd.Series({"mean": row[judged].mean(), "worst": row[judged].min()})])
    return pd.DataFrame(out).T


#: The live test's calm regimes, where a storm state that stays on too long costs (by the true regime
#: and by the labeler's): the served member against the same member on the window alone.
CALM_CELLS: tuple[tuple[str, str], ...] = tuple(
    (source, regime) for source in ("true", "labeler") for regime in ("normal", "low_volatility", "high_volatility"))


def calm_table(runs: Mapping[str, list[dict[str, Any]]]) -> pd.DataFrame:
    """Per setup (rows): the served ensemble minus the window-only one on the live test's calm
    rows [95% over markets], by the true regime and by the labeler's: the cost of reading calm
    sessions as a storm, which the storm cells cannot show."""
    out = {}
    for name, seeds in runs.items():
        table = quality.summarise(seeds)
        served = table.loc[(table["variant"] == quality.ENSEMBLE) & (table["test"] == "live storm after today")]
        cells = {}
        for source, regime in CALM_CELLS:
            hit = served.loc[(served["regime_source"] == source) & (served["regime"] == regime)]
            if not hit.empty:
                cells[f"live {regime} ({source})"] = quality.interval_text(hit.iloc[0], "diff_window_ensemble")
        out[name] = pd.Series(cells, dtype="object")
    return pd.DataFrame(out).T


def _cell(value: Any) -> str:
    if isinstance(value, str):
        return value
    return f"{value:.0%}" if pd.notna(value) else ""


def markdown(table: pd.DataFrame, seeds: Sequence[int]) -> str:
    markets = f"{len(seeds)} development market{'s' if len(seeds) != 1 else ''}"
    lines = [f"| setup ({markets}) | " + " | ".join(table.columns) + " |",
             "|---|" + "---|" * len(table.columns)]
    for name, row in table.iterrows():
        lines.append(f"| {name} | " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines)


def main(setups: Sequence[tuple[str, dict[str, Any]]], *, seeds: int, member: str = quality.ABLATION_MEMBER,
         first_seed: int = quality.DEVELOPMENT_SEED, csv: Path | None = None, per_sector: int = quality.PER_SECTOR,
         held_out: Sequence[str] | None = None, jobs: int = 1) -> pd.DataFrame:
    chosen = list(range(first_seed, first_seed + seeds))
    evaluation = set(range(quality.BASE_SEED, quality.BASE_SEED + quality.EVALUATION_SEEDS))
    if evaluation & set(chosen):
        raise ValueError(f"seeds {sorted(evaluation & set(chosen))} are evaluation seeds: setups are compared on "
                         "development markets only")
    names = [name for name, _ in setups]
    if CONFIGURED in names or len(set(names)) != len(names):
        raise ValueError(f"setup names must be distinct and not {CONFIGURED!r}: {names}")
    base = load_config().config
    configs = {CONFIGURED: with_member_setup(base, member, {}, CONFIGURED)}
    configs.update({name: with_member_setup(base, member, kwargs, name) for name, kwargs in setups})
    runs: dict[str, list[dict[str, Any]]] = {}
    records = []
    for name, config in configs.items():
        started = time.perf_counter()
        for run in quality.run_seeds(config, chosen, jobs=jobs, verbose=False, members=[member], ablation_member=member,
                                     per_sector=per_sector, held_out=held_out):
            runs.setdefault(name, []).append(run)
            records += [{"setup": name, "seed": run["seed"], **r} for r in run["records"]]
            print(f"  {name}, market {run['seed']}: {run['seconds']:.0f} s", flush=True)
            if csv is not None:
                pd.DataFrame(records).to_csv(csv, index=False)
        runs[name].sort(key=lambda run: run["seed"])
        print(f"  {name}: {len(chosen)} markets in {time.perf_counter() - started:.0f} s", flush=True)
    table = edge_table(runs)
    print(f"\n{member}: served edge share per storm test set (labeler's regimes), each setup as the whole zoo")
    print(markdown(table, chosen))
    print(f"\n{member}: served - window-only on the live test's calm rows [95% over markets]")
    print(markdown(calm_table(runs), chosen))
    return table


def cli(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.member_setups", description=__doc__.splitlines()[0])
    parser.add_argument("--setup", action="append", default=[], metavar="NAME=JSON",
                        help="keywords over the member's configured ones, e.g. 'x={\"C\": 1.0}' (repeatable)")
    parser.add_argument("--member", default=quality.ABLATION_MEMBER, help="the zoo member (default %(default)s)")
    parser.add_argument("--seeds", type=int, default=20, help="development markets (default %(default)s)")
    parser.add_argument("--first-seed", type=int, default=quality.DEVELOPMENT_SEED)
    parser.add_argument("--csv", type=Path, default=None, help="write every per-market record here")
    parser.add_argument("--jobs", type=int, default=quality.DEFAULT_JOBS,
                        help="markets run at a time, each in its own process (default %(default)s)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, not {args.jobs}")
    try:
        setups = [parse_setup(text) for text in args.setup]
        main(setups, seeds=args.seeds, member=args.member, first_seed=args.first_seed, csv=args.csv, jobs=args.jobs)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())
