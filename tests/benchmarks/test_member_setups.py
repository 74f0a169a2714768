"""The development-market comparison of member setups: bad setups fail before any market is run,
evaluation seeds are refused, and a setup's keywords really reach the member."""

from __future__ import annotations

import pytest

from benchmarks import member_setups, quality


@pytest.mark.parametrize(("text", "message"), [
    ("vix", "expected NAME="),
    ("vix={C: 1}", "--setup vix: not valid JSON"),
    ("vix=[1, 2]", "--setup vix: expected a JSON object of keyword arguments, got list"),
])
def test_a_malformed_setup_is_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        member_setups.parse_setup(text)


def test_a_keyword_the_member_does_not_take_fails_before_any_market_runs() -> None:
    with pytest.raises(ValueError, match=r"setup wide: models\.zoo\.regime_aware\.kwargs\.nope"):
        member_setups.main([("wide", {"nope": 1})], seeds=1)
    with pytest.raises(ValueError, match="are evaluation seeds"):
        member_setups.main([("c", {"C": 1.0})], seeds=2, first_seed=quality.BASE_SEED - 1)
    with pytest.raises(ValueError, match=rf"\[{quality.BASE_SEED + quality.EVALUATION_SEEDS - 1}\] are evaluation"):
        member_setups.main([("c", {"C": 1.0})], seeds=2, first_seed=quality.BASE_SEED + quality.EVALUATION_SEEDS - 1)
    with pytest.raises(ValueError, match="distinct and not 'configured'"):
        member_setups.main([("configured", {"C": 1.0})], seeds=1)


def test_a_setup_that_cannot_flip_loses_the_crash_the_configured_one_gets(capsys: pytest.CaptureFixture) -> None:
    """A knot no VIX reaches leaves the member one sign for every regime: it must lose the live
    crash's edge that the configured VIX steps take, on the same market."""
    table = member_setups.main([("no flip", {"knots": {"vix_level": [1000.0]}})], seeds=1, per_sector=1,
                               held_out=[])
    assert list(table.index) == ["configured", "no flip"]
    crash = table["live storm after today: crash"]
    assert crash["configured"] > 0.3 and crash["no flip"] < 0.0, crash.to_dict()
    out = capsys.readouterr().out
    assert "| setup (1 development market) |" in out
    assert "served - window-only on the live test's calm rows" in out


def test_the_calm_table_is_the_served_member_against_the_window_on_the_live_calm_rows() -> None:
    """A storm state that stays on through the calm after a storm costs there, which no storm cell
    shows: the calm table gives the served member minus the window-only one, with its interval."""
    def market(seed: int, served: int, window: int) -> dict:
        records = []
        for source in ("true", "labeler"):
            for variant, hits in (("oracle", 60), (quality.ENSEMBLE, served), (quality.WINDOW_ENSEMBLE, window)):
                records.append({"test": "live storm after today", "kind": "live", "variant": variant,
                                "regime_source": source, "regime": "normal", "n": 100, "hits": hits,
                                "up": 50, "up_hits": 25})
        return {"seed": seed, "records": records}

    table = member_setups.calm_table({"lingers": [market(1, 50, 55), market(2, 51, 55), market(3, 49, 55)]})
    cell = table.loc["lingers", "live normal (true)"]
    assert cell.startswith("-0.050 [") and cell.endswith("]"), cell
    low, high = (float(x) for x in cell[cell.index("[") + 1:-1].split(","))
    assert low < -0.05 < high < 0
    assert set(table.columns) == {"live normal (true)", "live normal (labeler)"}


def _records(cells: dict[tuple[str, str], tuple[int, int]]) -> list[dict]:
    """A market's labeler-regime records: per (test, regime), the oracle's and the served hits of 100."""
    out = []
    for (test, regime), (oracle, served) in cells.items():
        for variant, hits in (("oracle", oracle), (quality.ENSEMBLE, served)):
            out.append({"test": test, "kind": "held_out", "variant": variant, "regime_source": "labeler",
                        "regime": regime, "n": 100, "hits": hits, "up": 50, "up_hits": 25})
    return out


def test_a_cell_few_markets_have_is_shown_but_neither_the_mean_nor_the_worst() -> None:
    """The labeler finds a live recovery in 2 of 20 development markets: its edge share is the
    noise of a few sessions, and must not decide between setups that twenty markets' crashes rank."""
    crash, recovery = member_setups.STORM_CELLS[0], ("live storm after today", "recovery")
    seeds = [{"seed": 1, "records": _records({crash: (60, 55), recovery: (60, 40)})},
             {"seed": 2, "records": _records({crash: (60, 57)})},
             {"seed": 3, "records": _records({crash: (60, 53)})}]
    table = member_setups.edge_table({"setup": seeds})
    row = table.loc["setup"]
    assert row["live storm after today: recovery (1 of 3 markets)"] == pytest.approx(-1.0)
    assert row["worst"] == pytest.approx(0.5) and row["mean"] == pytest.approx(0.5)
    assert row["2008 financial crisis: crash"] == pytest.approx(0.5)
