"""Symbols that are safe to use as file names.

A symbol becomes a Parquet file name in the cache, so anything that could escape the cache
directory (``../x``, ``a/b``) or collide on a case-insensitive file system is refused up front
rather than sanitised: silently rewriting a symbol would cache one instrument under another's name.
"""

from __future__ import annotations

import re

#: Upper-case letters and digits, optionally a leading caret (indices such as ``^VIX``) and
#: inner dots, dashes or equals signs (``BRK-B``, ``BRK.B``, ``EURUSD=X``); at most 15 characters.
SYMBOL_PATTERN = re.compile(r"^\^?[A-Z0-9](?:[A-Z0-9.=-]{0,13}[A-Z0-9])?$")


class UnsafeSymbolError(ValueError):
    """A symbol that does not match :data:`SYMBOL_PATTERN`."""


def check_symbol(symbol: object) -> str:
    """Return ``symbol`` unchanged if it is safe to use as a file name, else raise.

    >>> check_symbol("BRK-B")
    'BRK-B'
    >>> check_symbol("../etc")
    Traceback (most recent call last):
    ...
    market.symbols.UnsafeSymbolError: unsafe symbol '../etc': ...
    """
    if not isinstance(symbol, str) or not SYMBOL_PATTERN.fullmatch(symbol):
        raise UnsafeSymbolError(
            f"unsafe symbol {symbol!r}: symbols must be 1-15 upper-case letters or digits, "
            "optionally starting with '^' and containing '.', '-' or '=' inside "
            "(for example AAPL, BRK-B, ^VIX)"
        )
    return symbol
