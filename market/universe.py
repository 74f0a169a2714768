"""The universe: symbols with their GICS sectors, as configured in ``stormwatch.yaml``."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from market.symbols import check_symbol
from market.vocabulary import UNKNOWN_SECTOR, Sector

#: A member's sector: a GICS sector, or ``"Unknown"`` for a user's symbol nobody has classified
#: (its sector features then compare it with the other unclassified members only).
MemberSector = Sector | Literal[UNKNOWN_SECTOR]  # type: ignore[valid-type]


class UniverseMember(BaseModel):
    """One symbol and its GICS sector (or ``"Unknown"``), and optionally the sessions it was a
    member of the universe (point-in-time membership: no sample exists outside them, so a
    universe of today's members need not pretend they were members in 2005)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str
    sector: MemberSector
    #: First session as a member; ``None``: since its first bar.
    entered: date | None = None
    #: Last session as a member; ``None``: still a member.
    left: date | None = None

    @model_validator(mode="after")
    def _in_order(self) -> UniverseMember:
        if self.entered is not None and self.left is not None and self.left < self.entered:
            raise ValueError(f"{self.symbol} left the universe ({self.left}) before it entered "
                             f"({self.entered})")
        return self

    @field_validator("symbol")
    @classmethod
    def _safe_symbol(cls, value: str) -> str:
        return check_symbol(value)


class Universe(BaseModel):
    """The configured universe, its market proxy and its volatility index."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    market_proxy: str = "SPY"
    vix_symbol: str = "^VIX"
    members: tuple[UniverseMember, ...]

    @field_validator("market_proxy", "vix_symbol")
    @classmethod
    def _safe_symbols(cls, value: str) -> str:
        return check_symbol(value)

    @model_validator(mode="after")
    def _unique(self) -> Universe:
        counts = Counter(m.symbol for m in self.members)
        repeated = sorted(s for s, n in counts.items() if n > 1)
        if repeated:
            raise ValueError(f"symbols listed more than once: {', '.join(repeated)}")
        if not self.members:
            raise ValueError("the universe has no members")
        return self

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(m.symbol for m in self.members)

    def sector_of(self, symbol: str) -> MemberSector:
        for member in self.members:
            if member.symbol == symbol:
                return member.sector
        raise KeyError(f"{symbol} is not in the universe")

    def by_sector(self) -> dict[MemberSector, tuple[str, ...]]:
        groups: dict[MemberSector, list[str]] = {}
        for member in self.members:
            groups.setdefault(member.sector, []).append(member.symbol)
        return {sector: tuple(symbols) for sector, symbols in groups.items()}
