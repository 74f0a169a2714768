"""How long ``stormwatch retrain`` takes, and how much memory, on the default simulated universe.

Runs the whole twelve-step flow (Prefect's ephemeral mode, a fresh ``STORMWATCH_HOME``, so the
simulated bars and the archive are built too) and prints the total time, each member's fit time
as a ratio to the LightGBM member's fit in the same run (the in-run baseline), and the peak
resident memory of the process. Targets (issue 8): at most 5 minutes and under 3 GB on 2 cores.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import date

TARGET_SECONDS = 300.0
TARGET_PEAK_MB = 3 * 1024.0
AS_OF = date(2026, 11, 20)  # pinned, so that every run measures the same market


def main() -> list[str]:
    home = tempfile.mkdtemp(prefix="stormwatch-bench-retrain-")
    os.environ["STORMWATCH_HOME"] = home
    os.environ.setdefault("PREFECT_HOME", os.path.join(home, "prefect"))
    os.makedirs(os.environ["PREFECT_HOME"], exist_ok=True)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from flows.config import load_config
    from flows.retrain import run_retrain

    config = load_config()
    started = time.perf_counter()
    outcome = run_retrain(as_of=AS_OF, config_path=str(config.path),
                          max_parallel_members=config.config.models.training.max_parallel_members)
    wall = time.perf_counter() - started
    baseline = outcome.fit_seconds["lightgbm"]
    print(f"stormwatch retrain, default simulated universe as of {AS_OF} (fresh home: bars, archive, training)")
    print(f"  training set: {outcome.training_rows:,} rows x 180 features; run {outcome.run_id}")
    print(f"  total wall time {wall:.1f} s (target <= {TARGET_SECONDS:.0f} s), flow {outcome.seconds:.1f} s")
    print(f"  peak resident memory {outcome.peak_memory_mb:,.0f} MB (target < {TARGET_PEAK_MB:,.0f} MB)")
    print("  member fit times (two members at once), ratio to LightGBM's fit in this run:")
    for name, seconds in sorted(outcome.fit_seconds.items(), key=lambda kv: -kv[1]):
        print(f"    {name:<20} {seconds:6.1f} s  {seconds / baseline:5.1f}x")
    if outcome.window_fit_seconds:  # the second zoo, on the window alone, serving calm rows
        print(f"  the window zoo ({outcome.calm_gate}), the same members on the window alone: "
              f"{sum(outcome.window_fit_seconds.values()):.1f} s of fits against "
              f"{sum(outcome.fit_seconds.values()):.1f} s for the hybrid zoo")
    print("  validation accuracy, ensemble: " + ", ".join(
        f"{r} {a:.3f}" for r, a in outcome.accuracy["ensemble"].items()))
    missed = []
    if wall > TARGET_SECONDS:
        missed.append(f"retrain took {wall:.0f} s (> {TARGET_SECONDS:.0f} s)")
    if outcome.peak_memory_mb > TARGET_PEAK_MB:
        missed.append(f"peak memory {outcome.peak_memory_mb:.0f} MB (> {TARGET_PEAK_MB:.0f} MB)")
    print("targets: " + ("met" if not missed else "NOT MET: " + "; ".join(missed)))
    return missed


if __name__ == "__main__":
    sys.exit(1 if main() else 0)
