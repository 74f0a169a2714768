"""Scale: time and peak memory against the universe's size, ``python -m benchmarks.scale``.

Simulated universes of 76 (the default), 500 and 1,500 symbols (the default universe, then
``SIM0000``... spread over the eleven sectors), "today" pinned at :data:`TODAY`. For each, every
step runs in its own process, so that its peak resident memory (``wait4``'s ``ru_maxrss``) is its
own: ``stormwatch data fetch``, ``stormwatch archive build``, the newest session's features,
one monitor cycle (``benchmarks.cycle``: the fetch excluded, models already read) and
``stormwatch retrain``. Beside each figure, the per-symbol cost against the 76-symbol universe of
the same invocation: 1.0 is linear in symbols.

Targets (issue 12): at 500 symbols, ``archive build`` at most 1.5 GB and at most 1.2x linear in
time; at 1,500, within 4 GB; ``stormwatch retrain`` at 500 within 15 minutes and under 6 GB;
one monitor cycle at 500 within 2 s. ``make bench`` runs a reduced version (76 and 228 symbols,
no retraining: ``benchmarks.retrain`` measures the default one) and says that it is one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import yaml

TODAY = date(2026, 6, 1)
FULL = (76, 500, 1500)
REDUCED = (76, 228)
RESULTS = Path(__file__).parent / "results" / "scale.json"
STEPS = ("data fetch", "archive build", "newest features", "monitor cycle", "retrain")


@dataclass(frozen=True)
class Step:
    symbols: int
    step: str
    seconds: float  # the step's own time (what the per-symbol ratio compares)
    wall_seconds: float  # the process's, start and imports included
    peak_mb: float  # peak resident memory of the step's process
    detail: str = ""  # how ``seconds`` was taken


def scaled_config(symbols: int, path: Path) -> Path:
    """The packaged configuration with a universe of ``symbols``: the default 76, then synthetic
    names over the same sectors in turn, the simulated market pinned to :data:`TODAY`."""
    from flows.config import DEFAULT_CONFIG_PATH

    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    members = list(raw["market"]["universe"]["members"])[:symbols]
    sectors = sorted({m["sector"] for m in raw["market"]["universe"]["members"]})
    members += [{"symbol": f"SIM{i:04d}", "sector": sectors[i % len(sectors)]} for i in range(symbols - len(members))]
    raw["market"]["universe"]["members"] = members
    raw["market"]["sources"]["simulated"]["end"] = TODAY.isoformat()
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _run(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``command``; its wall seconds, its own peak resident MB and its output (raises on failure)."""
    started = time.perf_counter()
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as child:
        output = child.stdout.read() if child.stdout else ""
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({child.returncode}):\n{output[-3000:]}")
    return seconds, usage.ru_maxrss / 1024.0, output


def newest_features_seconds(config_path: Path) -> float:
    """Best of three: the newest session's features of the cached universe (run in a child)."""
    from flows.archive import cached_panel
    from flows.config import Settings, load_config
    from market.features import newest_features

    loaded = load_config(config_path)
    _, panel = cached_panel(loaded, Settings())
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        newest_features(panel, sessions=1, vix_fallback=loaded.config.market.vix_fallback,
                        chunk_symbols=loaded.config.market.feature_chunk_symbols)
        best = min(best, time.perf_counter() - started)
    return best


def measure(symbols: int, work: Path, retrain: bool) -> list[Step]:
    """Every step on a universe of ``symbols``, each in its own process, in a fresh home."""
    home = work / f"home-{symbols}"
    config = scaled_config(symbols, work / f"stormwatch-{symbols}.yaml")
    env = {**os.environ, "STORMWATCH_HOME": str(home), "STORMWATCH_CONFIG": str(config),
           "PREFECT_HOME": str(home / "prefect"), "PREFECT_LOGGING_LEVEL": "ERROR",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
           "COLUMNS": "200"}
    cli = [str(Path(sys.executable).with_name("stormwatch"))]
    # A command's wall time includes starting Python and importing Prefect (seconds, whatever the
    # universe): measured here, and taken off the commands whose own time is not printed.
    start = min(_run([*cli, "config", "validate"], env)[0] for _ in range(2))
    steps = []
    seconds, peak, _ = _run([*cli, "data", "fetch", "--end", TODAY.isoformat()], env)
    steps.append(Step(symbols, "data fetch", seconds - start, seconds, peak, f"wall - start ({start:.1f} s)"))
    seconds, peak, output = _run([*cli, "archive", "build"], env)
    built = re.search(r"samples in ([0-9.]+) s", output)
    steps.append(Step(symbols, "archive build", float(built.group(1)) if built else seconds - start, seconds,
                      peak, "as the command prints it"))
    probe = [sys.executable, "-c", f"from benchmarks.scale import newest_features_seconds as f; from pathlib "
             f"import Path; print(f(Path({str(config)!r})))"]
    seconds, peak, output = _run(probe, env)
    steps.append(Step(symbols, "newest features", float(output.strip().splitlines()[-1]), seconds, peak,
                      "in process, best of 3"))
    figures = work / f"cycle-{symbols}.json"
    seconds, peak, _ = _run([sys.executable, "-m", "benchmarks.cycle", "--config", str(config), "--json",
                             str(figures), "--target", "1e9"], env)
    cycle = json.loads(figures.read_text())
    steps.append(Step(symbols, "monitor cycle", cycle["cycle_s"], seconds, peak,
                      f"median of 8, models read; fresh process {cycle['fresh_process_s']:.2f} s"))
    if retrain:
        seconds, peak, output = _run([*cli, "retrain", "--end", TODAY.isoformat()], env)
        steps.append(Step(symbols, "retrain", seconds - start, seconds, peak, f"wall - start ({start:.1f} s)"))
        (work / f"retrain-{symbols}.txt").write_text(output)
        print(output[-2500:])
    return steps


def table(steps: list[Step]) -> str:
    """Markdown: one row per step and universe, with the per-symbol cost against the smallest."""
    sizes = sorted({s.symbols for s in steps})
    base = {s.step: s for s in steps if s.symbols == sizes[0]}
    lines = ["| step | symbols | time | process wall time | peak memory | per-symbol time vs 76 | time taken as |",
             "|---|---|---|---|---|---|---|"]
    for name in STEPS:
        for step in (s for s in steps if s.step == name):
            ratio = (step.seconds / step.symbols) / (base[name].seconds / base[name].symbols) if name in base else 0
            lines.append(f"| {name} | {step.symbols:,} | {step.seconds:.2f} s | {step.wall_seconds:.1f} s | "
                         f"{step.peak_mb / 1024:.2f} GB | "
                         f"{ratio:.2f}x | {step.detail} |")
    return "\n".join(lines)


def verdicts(steps: list[Step]) -> list[str]:
    """Each issue-12 target that this run can judge: 'met' or 'MISSED', with the figure."""
    at = {(s.symbols, s.step): s for s in steps}
    out = []

    def judge(ok: bool, text: str) -> None:
        out.append(("met     " if ok else "MISSED  ") + text)

    small = at.get((76, "archive build"))
    if (500, "archive build") in at:
        step = at[500, "archive build"]
        judge(step.peak_mb <= 1.5 * 1024, f"archive build, 500 symbols: {step.peak_mb / 1024:.2f} GB (<= 1.5 GB)")
        if small:
            ratio = (step.seconds / 500) / (small.seconds / 76)
            judge(ratio <= 1.2, f"archive build, 500 symbols: {ratio:.2f}x linear in time (<= 1.2x)")
    if (1500, "archive build") in at:
        step = at[1500, "archive build"]
        judge(step.peak_mb <= 4 * 1024, f"archive build, 1,500 symbols: {step.peak_mb / 1024:.2f} GB (<= 4 GB)")
    if (500, "monitor cycle") in at:
        step = at[500, "monitor cycle"]
        judge(step.seconds <= 2.0, f"one monitor cycle, 500 symbols: {step.seconds:.2f} s (<= 2 s)")
    if (500, "retrain") in at:
        step = at[500, "retrain"]
        wall = step.wall_seconds
        judge(wall <= 15 * 60 and step.peak_mb < 6 * 1024,
              f"retrain, 500 symbols: {wall / 60:.1f} min (<= 15), {step.peak_mb / 1024:.2f} GB (< 6 GB)")
    return out


def main(sizes: tuple[int, ...] = REDUCED, retrain_up_to: int = 0, label: str = "", save: bool = False) -> int:
    """Measure ``sizes``; print the table and the targets; return the number missed."""
    print(f"Scale{label}: simulated universes of {', '.join(f'{n:,}' for n in sizes)} symbols, today pinned at "
          f"{TODAY}; retraining up to {retrain_up_to:,} symbols; each step in its own process")
    steps: list[Step] = []
    with tempfile.TemporaryDirectory(prefix="stormwatch-scale-") as work:
        for symbols in sizes:
            steps += measure(symbols, Path(work), retrain=symbols <= retrain_up_to)
            print(f"  {symbols:,} symbols measured", flush=True)
    print(table(steps))
    judged = verdicts(steps)
    print("\n".join(judged) if judged else "(no issue-12 target applies to these sizes: they are judged at 500 "
                                           "and 1,500 symbols by the full run)")
    if save:
        from benchmarks.quality import package_versions

        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"today": TODAY.isoformat(), "cores": os.cpu_count(),
                                       "packages": package_versions(), "steps": [asdict(s) for s in steps],
                                       "verdicts": judged}, indent=2))
        print(f"written {RESULTS}")
    return sum(v.startswith("MISSED") for v in judged)


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", default=",".join(map(str, FULL)), help="universe sizes, comma-separated")
    parser.add_argument("--retrain-up-to", type=int, default=500, help="retrain universes up to this size")
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/scale.json")
    arguments = parser.parse_args()
    chosen = tuple(int(n) for n in arguments.symbols.split(","))
    raise SystemExit(1 if main(chosen, arguments.retrain_up_to, save=arguments.save) else 0)
