"""Checks shared by every configuration section that splits a whole into shares."""

from __future__ import annotations

from collections.abc import Mapping

#: Shares are written with two decimals in YAML; anything closer to 1 than this is 1.
SHARE_TOLERANCE = 1e-6


def check_shares_sum_to_one(shares: Mapping[str, float], what: str) -> None:
    """Raise ``ValueError`` naming ``what`` unless the non-negative ``shares`` sum to 1."""
    negative = {k: v for k, v in shares.items() if v < 0}
    if negative:
        raise ValueError(f"{what} must not be negative: {negative}")
    total = sum(shares.values())
    if abs(total - 1.0) > SHARE_TOLERANCE:
        listed = ", ".join(f"{k}={v:g}" for k, v in shares.items())
        raise ValueError(f"{what} must sum to 1, but sum to {total:.6g} ({listed})")
