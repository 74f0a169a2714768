"""Feature engine, archive, simulator and regime-labeler speed, against TA-Lib (the C floor) and ``ta`` (a pure-Python peer).

What is measured, on the default 76-symbol simulated universe cached as Parquet:

* the whole archive (8 events, all features and labels) built from cached bars: wall time,
  samples per second, feature values per second and peak Python-allocated memory;
* our cost per feature value over the full history (180 features on every session of every
  symbol), against TA-Lib computing 15 standard indicators (20 outputs) on the same bars, and
  against the ``ta`` library computing the same indicators.

Targets (issue 3): the archive in at most 5 s; our cost per feature value within 4x the floor.
Times are the best of several runs so that a busy machine does not decide the result.
"""

from __future__ import annotations

import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import talib

from flows.config import Settings, load_config
from flows.data import fetch_market_data, resolve_source
from market.cache import BarCache
from market.features import FEATURE_NAMES, compute_features
from market.panel import BarPanel, load_panel
from market.sources.simulated import simulate_market
from memory.archive import RareEventArchive
from memory.store import Store
from monitors.regimes import RegimeLabeler

ARCHIVE_TARGET_SECONDS = 5.0
FLOOR_RATIO_TARGET = 4.0
TALIB_OUTPUTS = 20  # values per bar produced by the 15 indicators below


def talib_floor(panel: BarPanel) -> None:
    """15 standard indicators (20 outputs) per symbol with TA-Lib."""
    for symbol in panel.symbols:
        h, l, c, v = (getattr(panel, f)[symbol].to_numpy() for f in ("high", "low", "close", "volume"))  # noqa: E741
        talib.SMA(c, 20), talib.SMA(c, 50), talib.EMA(c, 12), talib.EMA(c, 26), talib.RSI(c, 14)
        talib.MACD(c, 12, 26, 9), talib.BBANDS(c, 20, 2, 2), talib.ATR(h, l, c, 14), talib.ADX(h, l, c, 14)
        talib.STOCH(h, l, c), talib.CCI(h, l, c, 20), talib.WILLR(h, l, c, 14), talib.OBV(c, v)
        talib.MFI(h, l, c, v, 14), talib.ROC(c, 10)


def ta_peer(panel: BarPanel) -> None:
    """The same 15 indicators with the pure-Python ``ta`` library."""
    import ta

    for symbol in panel.symbols:
        h, l, c, v = (getattr(panel, f)[symbol] for f in ("high", "low", "close", "volume"))  # noqa: E741
        ta.trend.sma_indicator(c, 20), ta.trend.sma_indicator(c, 50), ta.trend.ema_indicator(c, 12)
        ta.trend.ema_indicator(c, 26), ta.momentum.rsi(c, 14)
        ta.trend.macd(c), ta.trend.macd_signal(c), ta.trend.macd_diff(c)
        ta.volatility.bollinger_hband(c), ta.volatility.bollinger_mavg(c), ta.volatility.bollinger_lband(c)
        ta.volatility.average_true_range(h, l, c, 14), ta.trend.adx(h, l, c, 14)
        ta.momentum.stoch(h, l, c), ta.momentum.stoch_signal(h, l, c), ta.trend.cci(h, l, c, 20)
        ta.momentum.williams_r(h, l, c, 14), ta.volume.on_balance_volume(c, v)
        ta.volume.money_flow_index(h, l, c, v, 14), ta.momentum.roc(c, 10)


def best_of(runs: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> list[str]:
    """Run the benchmark, print the report and return the targets missed."""
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    loaded = load_config()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp))
        source, universe = resolve_source(loaded, "simulated", today=date(2026, 11, 20))
        fetch_market_data(loaded, settings, source, universe, end=date(2026, 11, 20))
        cache = BarCache(settings.cache_dir, source.info.name)

        load_seconds = best_of(3, lambda: load_panel(cache, universe))
        panel = load_panel(cache, universe)
        rows = int(panel.close.notna().to_numpy().sum())

        archive_times, builds = [], []
        for attempt in range(3):
            with Store(f"sqlite:///{tmp}/bench-{attempt}.db") as store:
                archive = RareEventArchive(Path(tmp) / f"archive-{attempt}", store)
                started = time.perf_counter()
                fresh_panel = load_panel(cache, universe)  # from cached bars, every time
                builds.append(archive.build(loaded.config.memory.archive, fresh_panel,
                                            loaded.config.market.labels, "simulated"))
                archive_times.append(time.perf_counter() - started)
        archive_seconds = min(archive_times)
        samples = builds[-1].samples

        tracemalloc.start()
        with Store(f"sqlite:///{tmp}/bench-mem.db") as store:
            RareEventArchive(Path(tmp) / "archive-mem", store).build(
                loaded.config.memory.archive, load_panel(cache, universe), loaded.config.market.labels,
                "simulated")
        peak_bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()

        simulate_seconds = best_of(3, lambda: simulate_market(universe, loaded.config.market.sources.simulated,
                                                              today=date(2026, 11, 20)))
        labeler = RegimeLabeler(loaded.config.monitors.regimes)
        label_seconds = best_of(5, lambda: labeler.label(panel.proxy["close"], panel.vix))
        ours_seconds = best_of(3, lambda: compute_features(panel))
        floor_seconds = best_of(5, lambda: talib_floor(panel))
        peer_seconds = best_of(1, lambda: ta_peer(panel))

    features = len(FEATURE_NAMES)
    ours_ns = ours_seconds / (rows * features) * 1e9
    floor_ns = floor_seconds / (rows * TALIB_OUTPUTS) * 1e9
    peer_ns = peer_seconds / (rows * TALIB_OUTPUTS) * 1e9
    report = pd.DataFrame(
        [
            ("archive build from cached bars", f"{archive_seconds:.2f} s", f"target <= {ARCHIVE_TARGET_SECONDS:.0f} s"),
            ("  samples", f"{samples:,}", f"{samples / archive_seconds:,.0f} samples/s"),
            ("  feature values", f"{samples * features:,}", f"{samples * features / archive_seconds:,.0f} values/s"),
            ("  peak Python memory", f"{peak_bytes / 2**20:,.0f} MiB", "tracemalloc, one build"),
            ("  of which loading the panel", f"{load_seconds:.2f} s", f"{len(panel.symbols) + 1} Parquet files"),
            ("full history, all features", f"{ours_seconds:.2f} s",
             f"{rows:,} bars x {features} features = {ours_ns:.1f} ns/value"),
            ("TA-Lib floor, 15 indicators", f"{floor_seconds:.3f} s", f"{floor_ns:.1f} ns/value"),
            ("ta (pure Python), same indicators", f"{peer_seconds:.2f} s", f"{peer_ns:.1f} ns/value"),
            ("ours / TA-Lib per value", f"{ours_ns / floor_ns:.2f}x", f"target <= {FLOOR_RATIO_TARGET:.0f}x"),
            ("ours / ta per value", f"{ours_ns / peer_ns:.3f}x", "below 1 is faster than the peer"),
            ("simulate the default market", f"{simulate_seconds:.2f} s",
             f"{len(panel.symbols) + 1} series, {len(panel.sessions):,} sessions + live period"),
            ("label the proxy's regimes", f"{label_seconds * 1000:.0f} ms", f"{len(panel.sessions):,} sessions"),
        ],
        columns=["measure", "value", "note"],
    )
    print("Feature engine and archive (best of several runs, this machine)")
    print(report.to_string(index=False))
    missed = []
    if archive_seconds > ARCHIVE_TARGET_SECONDS:
        missed.append(f"archive took {archive_seconds:.2f} s (target {ARCHIVE_TARGET_SECONDS} s)")
    if ours_ns / floor_ns > FLOOR_RATIO_TARGET:
        missed.append(f"cost per value is {ours_ns / floor_ns:.2f}x TA-Lib's (target {FLOOR_RATIO_TARGET}x)")
    print("targets: " + ("all met" if not missed else "MISSED: " + "; ".join(missed)))
    np.seterr(all="warn")
    return missed


if __name__ == "__main__":
    raise SystemExit(1 if main() else 0)
