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
    assert "| setup (1 development market) |" in capsys.readouterr().out
