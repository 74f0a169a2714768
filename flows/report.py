"""The training report: one self-contained HTML page per retraining run, with its pictures.

``<home>/reports/<run>/index.html`` holds six sections a person reads to decide whether to trust
a model: per-regime metrics of the challenger against the champion, the promotion gate's
decision with every criterion, SHAP by regime, the sector view, the signal backtest and the
lineage. Every picture is also a PNG beside it and is embedded in the page (base64), so the file
can be mailed or attached on its own.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from market.figures import new_figure, save_png
from market.vocabulary import REGIMES

if TYPE_CHECKING:  # the report reads the training steps' results; it does not run them
    from flows.training import CalmRowsCheck

#: The report's sections, in order (their ids are the anchors of the page).
SECTIONS: tuple[tuple[str, str], ...] = (
    ("metrics", "Per-regime metrics: challenger against champion"),
    ("gate", "Promotion gate"),
    ("shap", "SHAP by regime"),
    ("sectors", "Sectors and symbols"),
    ("backtest", "Signal backtest"),
    ("lineage", "Lineage"),
)


@dataclass(frozen=True)
class Report:
    path: Path
    images: tuple[Path, ...]


def plot_regime_accuracy(challenger: pd.DataFrame, champion: pd.DataFrame | None, path: Path) -> Path:
    """Accuracy per regime of the challenger's ensemble and, when there is one, the champion's."""
    regimes = [r.value for r in REGIMES if r.value in challenger.index] + ["overall"]
    figure = new_figure(8, 3.6)
    axis = figure.subplots()
    x = np.arange(len(regimes))
    width = 0.38 if champion is not None else 0.6
    axis.bar(x - (width / 2 if champion is not None else 0), challenger.loc[regimes, "accuracy"], width,
             label="challenger", color="#3b6ea8")
    if champion is not None:
        axis.bar(x + width / 2, champion.reindex(regimes)["accuracy"], width, label="champion",
                 color="#9a9a9a")
    axis.axhline(0.5, color="#555555", linewidth=0.8, linestyle=":")
    axis.set_xticks(x, [f"{r}\n(n={int(challenger.loc[r, 'n']):,})" for r in regimes], fontsize=8)
    axis.set_ylim(0.4, max(0.65, float(challenger.loc[regimes, "accuracy"].max()) + 0.03))
    axis.set_ylabel("accuracy")
    axis.legend(fontsize=8)
    axis.set_title("Validation accuracy per regime", fontsize=10)
    return save_png(figure, path)


def plot_equity(daily: pd.DataFrame, path: Path) -> Path:
    """The long/short book's cumulative net return over the validation sessions, by regime."""
    figure = new_figure(8, 3.2)
    axis = figure.subplots()
    curve = daily["net"].cumsum().to_numpy()
    axis.plot(np.arange(len(curve)), curve, color="#2c3e50", linewidth=1.0)
    crash = (daily["regime"] == "crash").to_numpy()
    axis.fill_between(np.arange(len(curve)), curve.min(), curve.max(), where=crash, color="#c0392b",
                      alpha=0.12, label="crash sessions")
    axis.set_xlabel("validation session (window tail, then archive event tails)")
    axis.set_ylabel("cumulative net return")
    axis.legend(fontsize=8)
    return save_png(figure, path)


def _table(frame: pd.DataFrame, digits: int = 3) -> str:
    counts = [c for c in ("n", "rows", "sessions", "positions") if c in frame.columns]
    frame = frame.astype(dict.fromkeys(counts, "Int64"))  # counts read as counts, not 204.000
    return frame.to_html(float_format=lambda v: f"{v:.{digits}f}", na_rep="-", border=0, classes="t")


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>' \
           f"{html.escape(path.name)}</figcaption></figure>"


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{font-size:1.5rem}h2{font-size:1.15rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table.t{border-collapse:collapse;font-size:.8rem;margin:.5rem 0}
table.t td,table.t th{padding:.2rem .5rem;border-bottom:1px solid #eee;text-align:right}
img{max-width:100%}.pass{color:#1e7d32}.fail{color:#b71c1c;font-weight:600}.untested{color:#b26a00}
.verdict{font-size:1.1rem;font-weight:600}
"""

#: Marks the body once every image has decoded, so a headless browser can check the page whole.
_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.from(document.images);
  var ok = imgs.every(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-images-loaded', ok ? 'yes' : 'no');
});
"""


def write_report(
    settings: Any,
    outcome: Any,
    *,
    run: Any,
    validation: Any,
    diagnostics: Any,
) -> Report:
    """Write ``reports/<run>/index.html`` and its PNGs for a finished run (``outcome`` is the
    flow's :class:`~flows.retrain.RetrainOutcome`; ``run`` its :class:`TrainingRun` record)."""
    folder = settings.reports_dir / outcome.run_id
    gate = outcome.gate
    accuracy_png = plot_regime_accuracy(validation.metrics["ensemble"], gate.champion_metrics,
                                        folder / "accuracy-by-regime.png")
    equity_png = plot_equity(diagnostics.backtest.daily, folder / "backtest-equity.png")
    images = [accuracy_png, outcome.explanation.plot, diagnostics.heatmap, equity_png]
    body = [f"<h1>Retraining run {html.escape(outcome.run_id)}</h1>",
            f"<p>{html.escape(outcome.source)} as of {outcome.as_of}, "
            f"variant {html.escape(outcome.variant)}, "
            f"{outcome.training_rows:,} training rows, {outcome.seconds:.0f} s.</p>"]

    def section(key: str, content: str) -> None:
        title = dict(SECTIONS)[key]
        body.append(f'<section id="{key}"><h2>{html.escape(title)}</h2>{content}</section>')

    metrics = outcome.accuracy.copy()
    if gate.champion_metrics is not None:
        metrics["champion"] = gate.champion_metrics["accuracy"].reindex(metrics.index)
    section("metrics", _image(accuracy_png, "accuracy per regime")
            + "<p>Accuracy per regime of every member, the ensemble (the challenger) and the serving "
            "champion, on the same validation rows."
            + _calm_rows_sentence(outcome.calm_check) + "</p>" + _table(metrics))
    verdict = ("promoted" if gate.promoted else "not promoted") + (
        " (first model, against the floors)" if gate.decision.first_model
        else f" against champion {html.escape(str(gate.champion_before))}")
    criteria = gate.decision.to_frame()
    criteria["verdict"] = [f'<span class="{v}">{v}</span>' for v in criteria["verdict"]]
    section("gate", f'<p class="verdict">{verdict}</p>'
            + "".join(f"<p class='fail'>{html.escape(r)}</p>" for r in gate.decision.reasons)
            + criteria.to_html(escape=False, index=False, border=0, classes="t",
                               float_format=lambda v: f"{v:.4f}"))
    shap_content = ("<p>No tree member to explain.</p>" if outcome.explanation.plot is None
                    else _image(outcome.explanation.plot, "SHAP by regime"))
    section("shap", shap_content)
    tracking = diagnostics.tracking
    section("sectors", _image(diagnostics.heatmap, "accuracy by sector and regime")
            + f"<p>Weakest sectors (at least {tracking.min_rows} rows):</p>"
            + _table(tracking.weakest_sectors)
            + "<p>Weakest symbols:</p>" + _table(tracking.weakest_symbols) + _table(tracking.by_sector))
    section("backtest", _image(equity_png, "backtest equity") + _table(diagnostics.backtest.summary))
    lineage = pd.DataFrame({"value": {
        "run": run.run_id, "configuration": f"{run.config_version} ({run.config_hash[:16]})",
        "data snapshot": run.data_snapshot[:16], "archive": run.archive_version,
        "replay": f"{run.replay_rows} rows {run.replay_version}", "training set": run.training_set_hash[:16],
        "flow run": run.flow_run_id, "validation rows": f"{len(validation.rows):,}",
    }})
    zoo = json.loads(run.details or "{}").get("window_zoo")
    if zoo:  # the second zoo's set: the window alone, purged against the same validation rows
        lineage.loc["window zoo's training set"] = (f"{zoo['training_set_hash'][:16]} "
                                                    f"({zoo['training_rows']:,} rows; serves {zoo['rule']})")
    section("lineage", lineage.to_html(border=0, classes="t"))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>Stormwatch run {outcome.run_id}"
            f"</title><style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>"
            + "".join(body) + "</body></html>")
    path = folder / "index.html"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(page, encoding="utf-8")
    temporary.replace(path)
    return Report(path=path, images=tuple(p for p in images if p is not None))


def _calm_rows_sentence(check: CalmRowsCheck | None) -> str:
    """Who served the calm rows, and why, for the metrics section."""
    if check is None:
        return ""
    evidence = (f" (validation log loss on its {check.rows:,} calm rows: {check.window_log_loss:.4f} against "
                f"the hybrid zoo's {check.hybrid_log_loss:.4f})") if check.rows else ""
    if check.window_serves:
        return (f" The challenger serves rows with {html.escape(check.rule)} by the zoo fitted on the "
                f"window alone (<code>window_ensemble</code>){evidence}, the others by the zoo fitted on the "
                "hybrid set (<code>hybrid_ensemble</code>).")
    return (" The zoo fitted on the window alone (<code>window_ensemble</code>) did not validate better on "
            f"rows with {html.escape(check.rule)}{evidence}, so the challenger is the zoo fitted on the "
            "hybrid set (<code>hybrid_ensemble</code>) on every row.")


__all__ = ["SECTIONS", "Report", "plot_equity", "plot_regime_accuracy", "write_report"]
