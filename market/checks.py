"""Checks shared by the configuration sections of every room: shares that split a whole, and
versions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated

from pydantic import AfterValidator

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


_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")


def check_semver(value: str) -> str:
    """Return ``value`` if it is ``MAJOR.MINOR.PATCH``, else raise ``ValueError`` saying so."""
    if not _SEMVER.fullmatch(value):
        raise ValueError(f"version {value!r} is not MAJOR.MINOR.PATCH")
    return value


#: A configuration field holding a semantic version.
SemVer = Annotated[str, AfterValidator(check_semver)]
