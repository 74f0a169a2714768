"""The quality benchmark's own honesty: nothing of the simulator's truth reaches a feature, and
with labels shuffled in time the same pipeline scores at chance."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks import quality
from flows.config import load_config
from tests.conftest import DEFAULT_CONFIG

SEED = quality.BASE_SEED
MEMBERS = ["lightgbm", "regime_aware"]  # a tree and the linear member: enough to fit what leaks


@pytest.fixture(scope="module")
def base():
    return load_config(DEFAULT_CONFIG).config


@pytest.fixture(scope="module")
def market(base):
    return quality.simulate(quality.benchmark_config(base, SEED, per_sector=1))


def scrambled(market):
    """The same bars with the simulator's truth replaced by noise: regimes permuted in time, the
    oracle and the expected returns drawn at random."""
    rng = np.random.default_rng(1)
    regimes = pd.Series(rng.permutation(market.regimes.to_numpy()), index=market.regimes.index,
                        name=market.regimes.name)
    expected = pd.DataFrame(rng.normal(size=market.expected_excess_return.shape),
                            index=market.expected_excess_return.index, columns=market.expected_excess_return.columns)
    oracle = pd.DataFrame(np.where(expected.to_numpy() >= 0, 1, -1).astype(np.int8), index=expected.index,
                          columns=expected.columns)
    return dataclasses.replace(market, regimes=regimes, expected_excess_return=expected, oracle=oracle)


def test_neither_the_true_regime_nor_the_oracle_reaches_a_feature(base, market, tmp_path: Path) -> None:
    """Every prediction the benchmark scores is bit-for-bit the same when the simulator's true
    regimes and oracle are noise: they reach no feature, no training row and no model. Only the
    oracle's own row and the true-regime grouping change."""
    kwargs = {"members": MEMBERS, "held_out": ["2018 Volmageddon"], "per_sector": 1}
    real = quality.run_seed(base, SEED, home=tmp_path / "real", market=market, **kwargs)
    noise = quality.run_seed(base, SEED, home=tmp_path / "noise", market=scrambled(market), **kwargs)

    def scored(run):
        frame = pd.DataFrame(run["records"])
        return frame.loc[(frame["variant"] != "oracle") & (frame["regime_source"] == "labeler")].reset_index(drop=True)

    pd.testing.assert_frame_equal(scored(real), scored(noise))
    oracle = [pd.DataFrame(r["records"]).query("variant == 'oracle' and regime == 'overall'")["hits"].to_numpy()
              for r in (real, noise)]
    assert not np.array_equal(*oracle)  # the truth did change, and the benchmark did read it for the oracle
    assert {"member: lightgbm", "member: regime_aware", quality.ENSEMBLE} <= set(scored(real)["variant"])


#: Permutations of the training labels the shuffled-label test averages over (see its docstring).
SHUFFLES = 12


def balanced_accuracy(records: list[dict]) -> pd.Series:
    """Balanced accuracy of each variant over every test set together, by the labeler's regimes."""
    frame = pd.DataFrame(records)
    overall = frame.loc[(frame["regime"] == "overall") & (frame["regime_source"] == "labeler")]
    totals = overall.groupby("variant")[["hits", "n", "up", "up_hits"]].sum()
    down, down_hits = totals["n"] - totals["up"], totals["hits"] - totals["up_hits"]
    return (totals["up_hits"] / totals["up"] + down_hits / down) / 2


def test_labels_shuffled_in_time_score_at_chance(base, market, tmp_path: Path) -> None:
    """Training labels permuted in time within the window and the archive: averaged over twelve
    permutations, the served ensemble and the window-only one score 0.50 +- 0.02 balanced
    accuracy over all test sets (live storm and four held-out storms) together, and every other
    variant 0.50 +- 0.03; plain accuracy would reward guessing the test rows' majority class.

    One permutation is not the null: a model fitted to shuffled labels still gives the real
    signals in the test storms a coefficient, of random sign, so one fit scores 0.5 plus or minus
    the storms' edge (measured over eleven permutations: standard deviation 0.037 for the
    one-signal member on the window alone, 0.032 for the window-only ensemble; means 0.493 and
    0.496). A leak lifts every permutation; chance leaves the mean at 0.5, within about 0.01 for
    twelve. The oracle, on the same rows, does better."""
    runs = [quality.run_seed(base, SEED, home=tmp_path / str(k), market=market, shuffle_labels=True,
                             shuffle_seed=k, members=MEMBERS, per_sector=1)["records"] for k in range(SHUFFLES)]
    served_rows = pd.DataFrame(runs[0]).query("variant == @quality.ENSEMBLE and regime == 'overall' "
                                              "and regime_source == 'labeler'")["n"].sum()
    assert served_rows > 3000
    scores = pd.DataFrame({k: balanced_accuracy(records) for k, records in enumerate(runs)})
    assert scores.T.nunique().drop("oracle").min() > 1  # each permutation is a different fit
    mean = scores.mean(axis=1)
    chance = mean.drop("oracle")
    served = chance[[quality.ENSEMBLE, quality.WINDOW_ENSEMBLE]]
    assert (served - 0.5).abs().max() <= 0.02, scores.round(3).to_dict("index")
    assert (chance - 0.5).abs().max() <= 0.03, scores.round(3).to_dict("index")
    assert mean["oracle"] > 0.53


def test_development_markets_are_not_the_evaluation_and_never_overwrite_it() -> None:
    """Design choices are compared on development seeds (``--development``): they must be other
    markets than the evaluation seeds, and their results other files than the committed ones."""
    development = set(range(quality.DEVELOPMENT_SEED, quality.DEVELOPMENT_SEED + 100))
    evaluation = set(range(quality.BASE_SEED, quality.BASE_SEED + quality.EVALUATION_SEEDS))
    assert not development & evaluation
    assert quality.results_stem(10) == "quality"
    assert quality.results_stem(3) == "quality-3-seeds"
    assert quality.results_stem(10, development=True) == "quality-development-10-seeds"


def test_the_readme_shows_the_committed_runs_tables() -> None:
    """The README's quality tables are the committed JSON's, as the benchmark prints them: a rerun
    whose figures did not reach the README (or a README edited by hand) fails here."""
    root = Path(__file__).resolve().parents[2]
    payload = json.loads((quality.RESULTS / "quality.json").read_text())
    table = pd.DataFrame(payload["summary"])
    readme = (root / "README.md").read_text()
    for text in (quality.summary_table(table), quality.summary_table(table, "true"), quality.weighting_table(table)):
        assert text in readme, text.splitlines()[2]
    assert payload["seeds"] == list(range(quality.BASE_SEED, quality.BASE_SEED + quality.EVALUATION_SEEDS))
    assert payload["dates"]["live_sessions"] == quality.LIVE_SESSIONS


def test_seeds_run_side_by_side_give_the_figures_they_give_one_after_another() -> None:
    """``--jobs 2`` runs seeds in worker processes: each seed's records must be the ones it gets
    alone, in the caller's process (a seed shares nothing with another: market, home, fits)."""
    base = load_config(DEFAULT_CONFIG).config
    seeds = [quality.BASE_SEED - 2, quality.BASE_SEED - 1]  # neither an evaluation nor a development seed
    kwargs = {"members": ["regime_aware", "logistic_regression"], "held_out": ["2018 Volmageddon"], "per_sector": 1}
    alone = {run["seed"]: run for run in quality.run_seeds(base, seeds, jobs=1, **kwargs)}
    side_by_side = list(quality.run_seeds(base, seeds, jobs=2, **kwargs))
    assert sorted(run["seed"] for run in side_by_side) == seeds
    for run in side_by_side:
        pd.testing.assert_frame_equal(pd.DataFrame(run["records"]), pd.DataFrame(alone[run["seed"]]["records"]))
        assert run["ensemble_weights"] == alone[run["seed"]]["ensemble_weights"]
    assert len({json.dumps(run["records"]) for run in side_by_side}) == 2  # two markets, not one twice
