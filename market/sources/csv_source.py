"""The user's own daily bars: a directory of ``SYMBOL.csv`` or ``SYMBOL.parquet`` files.

File layout
-----------
* One file per symbol, named ``<SYMBOL>.csv`` or ``<SYMBOL>.parquet``. The file stem is the
  symbol and must pass :func:`market.symbols.check_symbol` (``AAPL.csv``, ``BRK-B.parquet``,
  ``^GSPC.csv``); other files in the directory are ignored without error and listed by
  :meth:`CsvSource.ignored_files`. A symbol with both a ``.csv`` and a ``.parquet`` file is
  refused as ambiguous.
* Column names are matched case-insensitively, ignoring surrounding spaces and treating ``_``
  as a space: ``date`` (or the index: an unnamed first CSV column as written by
  ``DataFrame.to_csv``, or a parquet ``DatetimeIndex``), ``open``, ``high``, ``low``,
  ``close``, ``volume``; other columns are ignored.
* If an ``adj close`` column (``Adj Close``, ``adj_close``) is present, open, high, low and
  close are all multiplied by ``adj close / close`` of their row, so the frame is split- and
  dividend-adjusted like every other source's; volume is kept as given. Without it the prices
  are used as they are (they should already be adjusted).
* Rows are sorted by date (exports are often newest first); duplicate dates are refused.
* The VIX lives in ``^VIX.csv`` or ``VIX.csv`` (or ``.parquet``; first the universe's
  ``vix_symbol``) with a date and a ``vix`` or ``close`` column (``vix`` wins when both exist).
  It is optional: without it :meth:`CsvSource.fetch_vix` raises
  :class:`~market.sources.base.NoVix` and the features and regimes use the market proxy's
  realised-volatility fallback (``market.vix``), flagged ``vix_is_fallback``.

The folder is the universe (:func:`folder_universe`): every symbol file except the market
proxy's and the VIX's is a member. The proxy is ``market.sources.csv.market_proxy``, else the
configured ``market.universe.market_proxy``. A member's sector is the configured one where the
symbol is listed in ``market.universe``, else the one given in an optional ``sectors.csv`` in
the folder (columns ``symbol`` and ``sector``, a GICS sector name), else ``Unknown``.

Errors
------
A file that cannot be read as bars raises :class:`MalformedFileError` (a
:class:`~market.sources.base.MarketDataError`) naming the file, the problem and where: the
columns that are missing, the row and value of an unparsable date, the row, column and value
of a non-numeric price. Rows are numbered from 1 for the first data row; for a CSV the message
also gives the line of the file (the header is line 1). Values that parse but break a bar rule
(a negative price, ``high`` below ``close``, an empty cell) raise
:class:`~market.validation.BarValidationError` from :func:`~market.validation.validate_bars`,
naming the symbol, date, column and rule. The whole file is checked, not only the rows of the
requested range, so a file is either usable or not whatever range is asked for.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from market.sources.base import (
    MarketDataError,
    NoVix,
    SourceInfo,
    SourceUnavailable,
    SymbolNotAvailable,
    conform_bars,
    date_range,
)
from market.symbols import UnsafeSymbolError, check_symbol
from market.universe import Universe, UniverseMember
from market.validation import BarValidationError, validate_bars
from market.vocabulary import BAR_COLUMNS, PRICE_COLUMNS, SECTORS, UNKNOWN_SECTOR

SUFFIXES: tuple[str, ...] = (".csv", ".parquet")
VIX_STEMS: tuple[str, ...] = ("^VIX", "VIX")
#: The optional file naming the sectors of symbols the configuration does not list.
SECTORS_FILE = "sectors.csv"


class MalformedFileError(MarketDataError):
    """A data file that cannot be read as bars. ``row`` is the 1-based data row (``None`` for
    a problem with the whole file), ``column`` and ``value`` what was found there."""

    def __init__(
        self,
        path: Path,
        problem: str,
        *,
        row: int | None = None,
        column: str | None = None,
        value: object = None,
    ) -> None:
        self.path, self.problem, self.row, self.column, self.value = (
            path, problem, row, column, value,
        )
        where = ""
        if row is not None:
            line = f" (line {row + 1})" if path.suffix == ".csv" else ""
            where = f"row {row}{line}"
            if column is not None:
                where += f", column {column!r}"
            where += ": "
        super().__init__(f"{path}: {where}{problem}")


def _key(label: object) -> str:
    """``' Adj_Close '`` -> ``'adj close'``."""
    return re.sub(r"\s+", " ", str(label).replace("_", " ")).strip().lower()


def _read_table(path: Path) -> pd.DataFrame:
    """The file's cells; CSV cells stay text so a bad value can be quoted as written."""
    try:
        if path.suffix == ".parquet":
            table = pd.read_parquet(path)
            if not isinstance(table.index, pd.RangeIndex):
                # A written index (typically the dates) becomes an ordinary column.
                name = table.index.name if table.index.name is not None else ""
                table = table.reset_index(names=name)
            return table
        return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise MalformedFileError(path, f"cannot be read: {exc}") from exc
    except Exception as exc:  # pyarrow raises its own ArrowInvalid on a corrupt file
        raise MalformedFileError(path, f"cannot be read: {type(exc).__name__}: {exc}") from exc


def _columns(path: Path, table: pd.DataFrame, wanted: Sequence[str]) -> dict[str, str]:
    """Map each wanted key to the file's column; the date may be an unnamed first column."""
    by_key: dict[str, str] = {}
    for column in table.columns:
        key = _key(column)
        if key in by_key:
            raise MalformedFileError(
                path, f"columns {by_key[key]!r} and {column!r} both mean {key!r}"
            )
        by_key[key] = str(column)
    found = {key: by_key[key] for key in wanted if key in by_key}
    if "date" in wanted and "date" not in found and len(table.columns):
        first = str(table.columns[0])
        if _key(first) in ("", "index") or first.startswith("Unnamed: 0"):
            found["date"] = first
    missing = [key for key in wanted if key not in found]
    if missing:
        raise MalformedFileError(
            path,
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(found: {', '.join(map(str, table.columns)) or 'none'}; names are matched "
            "case-insensitively)",
        )
    return found


def _is_blank(values: pd.Series) -> np.ndarray:
    text = values.astype("string").str.strip()
    return (values.isna() | (text == "") | text.str.lower().isin(["nan", "na", "null"])).to_numpy(
        dtype=bool
    )


def _parse_dates(path: Path, values: pd.Series) -> pd.DatetimeIndex:
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values):
        parsed = pd.to_datetime(values)
    else:
        # ISO 8601 first (fast, unambiguous); otherwise the format pandas infers from the
        # first date (``01/02/2020`` is then read month first), applied to every row.
        text = values.astype("string").str.strip()
        parsed = pd.to_datetime(text, errors="coerce", format="ISO8601")
        if parsed.isna().any():
            inferred = pd.to_datetime(text, errors="coerce")
            if inferred.isna().sum() < parsed.isna().sum():
                parsed = inferred
    bad = parsed.isna().to_numpy(dtype=bool)
    if bad.any():
        row = int(bad.argmax())
        raise MalformedFileError(
            path, f"cannot parse date {values.iloc[row]!r}", row=row + 1, column=values.name,
            value=values.iloc[row],
        )
    index = pd.DatetimeIndex(parsed)
    if index.tz is not None:
        index = index.tz_localize(None)
    return index


def _parse_numbers(path: Path, values: pd.Series) -> pd.Series:
    """Numbers as floats; an empty cell becomes NaN (refused later by validation), text that is
    not a number is refused here with its row."""
    if pd.api.types.is_bool_dtype(values):
        raise MalformedFileError(path, "holds true/false values, not numbers", column=values.name)
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("float64")
    numbers = pd.to_numeric(values.astype("string").str.strip(), errors="coerce").astype(
        "float64"
    )
    bad = numbers.isna().to_numpy(dtype=bool) & ~_is_blank(values)
    if bad.any():
        row = int(bad.argmax())
        raise MalformedFileError(
            path, f"{values.iloc[row]!r} is not a number", row=row + 1,
            column=str(values.name), value=values.iloc[row],
        )
    return numbers


def read_bars(path: Path, symbol: str) -> pd.DataFrame:
    """Read one bar file into a canonical, validated frame (see the module docstring)."""
    table = _read_table(path)
    if table.empty:
        raise MalformedFileError(path, "holds no rows")
    adjusted = "adj close" in {_key(column) for column in table.columns}
    wanted = ("date", *BAR_COLUMNS, *(("adj close",) if adjusted else ()))
    names = _columns(path, table, wanted)
    index = _parse_dates(path, table[names["date"]])
    bars = pd.DataFrame(
        {key: _parse_numbers(path, table[names[key]]).to_numpy() for key in wanted[1:]},
        index=index,
    )
    bars = bars.iloc[np.argsort(bars.index.asi8, kind="stable")]
    raw = conform_bars(bars)
    validate_bars(symbol, raw)
    if not adjusted:
        return raw
    adj_close = bars["adj close"].to_numpy()
    bad = ~(np.isfinite(adj_close) & (adj_close > 0))
    if bad.any():
        raise BarValidationError(
            symbol, raw.index[int(bad.argmax())], "adj close", "prices must be positive numbers"
        )
    out = raw.copy()
    out.loc[:, list(PRICE_COLUMNS)] = raw.loc[:, list(PRICE_COLUMNS)].mul(
        adj_close / raw["close"].to_numpy(), axis=0
    )
    validate_bars(symbol, out)
    return out


def read_vix(path: Path) -> pd.Series:
    """Read a VIX file: a date and a ``vix`` or ``close`` column, positive numbers."""
    table = _read_table(path)
    if table.empty:
        raise MalformedFileError(path, "holds no rows")
    keys = {_key(column) for column in table.columns}
    value_key = "vix" if "vix" in keys or "close" not in keys else "close"
    names = _columns(path, table, ("date", value_key))
    index = _parse_dates(path, table[names["date"]])
    values = pd.Series(
        _parse_numbers(path, table[names[value_key]]).to_numpy(), index=index, name="vix"
    )
    values = values.iloc[np.argsort(values.index.asi8, kind="stable")]
    values.index = values.index.normalize().astype("datetime64[ns]").rename("date")
    if values.index.has_duplicates:
        day = values.index[values.index.duplicated()][0]
        raise BarValidationError(VIX_STEMS[0], day, "date", "dates must be unique")
    bad = ~(np.isfinite(values.to_numpy()) & (values.to_numpy() > 0))
    if bad.any():
        raise BarValidationError(
            VIX_STEMS[0], values.index[int(bad.argmax())], value_key,
            "values must be finite positive numbers",
        )
    return values


class CsvSource:
    """Bars and VIX from a directory of the user's ``SYMBOL.csv`` / ``SYMBOL.parquet`` files.

    Parameters
    ----------
    directory
        The directory holding the files (see the module docstring for the layout, the
        adjustment rule and the errors).

    Each fetch reads the file again (no caching here; ``market.cache`` caches). A symbol whose
    file holds no date in the requested range raises :class:`SymbolNotAvailable`, as does a
    symbol with no file; ``fetch_vix`` returns the VIX values in the range, possibly none.

    Examples
    --------
    >>> import tempfile
    >>> from datetime import date
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "ACME.csv").write_text(
    ...     "Date,Open,High,Low,Close,Adj Close,Volume\\n"
    ...     "2020-01-02,10,11,9,10,5,1000\\n"
    ...     "2020-01-03,10,12,10,11,5.5,1200\\n")
    >>> source = CsvSource(folder)
    >>> source.available_symbols()
    ('ACME',)
    >>> bars = source.fetch_bars(["ACME"], date(2020, 1, 1), date(2020, 1, 31))["ACME"]
    >>> bars.loc["2020-01-03"].to_dict()  # prices times adj close / close = 0.5
    {'open': 5.0, 'high': 6.0, 'low': 5.0, 'close': 5.5, 'volume': 1200.0}
    >>> _ = (folder / "BAD.csv").write_text("date,open,high,low,close,volume\\n"
    ...                                    "2020-01-02,10,11,9,ten,1000\\n")
    >>> try:
    ...     source.fetch_bars(["BAD"], date(2020, 1, 1), date(2020, 1, 31))
    ... except MalformedFileError as error:
    ...     print(error.path.name, error.row, error.column, error.value, "|", error.problem)
    BAD.csv 1 close ten | 'ten' is not a number
    """

    def __init__(self, directory: Path, vix_symbol: str = VIX_STEMS[0]) -> None:
        self.directory = Path(directory)
        self.vix_stems = tuple(dict.fromkeys((check_symbol(vix_symbol), *VIX_STEMS)))
        self.info = SourceInfo(name="csv", real=True, provenance=f"user files in {self.directory}")
        #: What opening the folder as a universe found worth saying (members without a sector).
        self.notes: tuple[str, ...] = ()

    def _require_directory(self) -> None:
        if not self.directory.is_dir():
            raise SourceUnavailable(f"the data directory {self.directory} does not exist")

    def _data_files(self) -> list[Path]:
        self._require_directory()
        return sorted(
            p for p in self.directory.iterdir() if p.is_file() and p.suffix in SUFFIXES
        )

    def ignored_files(self) -> dict[Path, str]:
        """Files in the directory that are not served, with the reason (an unsafe stem, a
        suffix other than .csv/.parquet)."""
        self._require_directory()
        ignored: dict[Path, str] = {}
        for path in sorted(self.directory.iterdir()):
            if not path.is_file() or path.name == SECTORS_FILE:
                continue
            if path.suffix not in SUFFIXES:
                ignored[path] = f"not a {' or '.join(SUFFIXES)} file"
                continue
            try:
                check_symbol(path.stem)
            except UnsafeSymbolError as exc:
                ignored[path] = str(exc)
        return ignored

    def available_symbols(self) -> tuple[str, ...]:
        symbols: set[str] = set()
        for path in self._data_files():
            try:
                symbols.add(check_symbol(path.stem))
            except UnsafeSymbolError:
                continue
        return tuple(sorted(symbols - set(self.vix_stems)))

    def _file_of(self, stem: str, *, what: str) -> Path:
        self._require_directory()
        candidates = [self.directory / f"{stem}{suffix}" for suffix in SUFFIXES]
        present = [path for path in candidates if path.is_file()]
        if len(present) > 1:
            raise MalformedFileError(
                present[0], f"{what} has both {present[0].name} and {present[1].name}; keep one"
            )
        if not present:
            wanted = {path.name.lower() for path in candidates}
            near = sorted(p.name for p in self.directory.iterdir() if p.name.lower() in wanted)
            hint = (f"; found {', '.join(near)}: file names must match the symbol's case, so rename it "
                    f"to {stem}{Path(near[0]).suffix}") if near else ""
            raise SymbolNotAvailable(
                f"no file for {what}: tried {', '.join(str(p) for p in candidates)}{hint}"
            )
        return present[0]

    def fetch_bars(
        self, symbols: Sequence[str], start: date, end: date
    ) -> dict[str, pd.DataFrame]:
        wanted = list(dict.fromkeys(check_symbol(symbol) for symbol in symbols))
        first, last = date_range(start, end)
        out: dict[str, pd.DataFrame] = {}
        for symbol in wanted:
            path = self._file_of(symbol, what=symbol)
            bars = read_bars(path, symbol)
            held_first, held_last = bars.index[0], bars.index[-1]
            if last < held_first or first > held_last:
                raise SymbolNotAvailable(
                    f"{path} holds {symbol} from {held_first.date()} to {held_last.date()}; "
                    f"the requested range {first.date()} to {last.date()} lies outside it"
                )
            out[symbol] = bars.loc[first:last].copy()
        return out

    def fetch_vix(self, start: date, end: date) -> pd.Series:
        """The VIX values in ``[start, end]``; :class:`NoVix` when the folder has no VIX file."""
        first, last = date_range(start, end)
        self._require_directory()
        present = [
            self.directory / f"{stem}{suffix}"
            for stem in self.vix_stems
            for suffix in SUFFIXES
            if (self.directory / f"{stem}{suffix}").is_file()
        ]
        if not present:
            raise NoVix(f"no VIX file in {self.directory} (looked for "
                        f"{', '.join(f'{s}.csv' for s in self.vix_stems)} or .parquet)")
        if len(present) > 1:
            raise MalformedFileError(
                present[0], f"more than one VIX file ({', '.join(p.name for p in present)}); "
                "keep one"
            )
        return read_vix(present[0]).loc[first:last].copy()


def read_sectors(path: Path) -> dict[str, str]:
    """``sectors.csv``: a ``symbol`` and a ``sector`` column, each sector a GICS sector name
    (or ``Unknown``); a bad symbol, an unknown sector or a repeated symbol is refused by row."""
    table = _read_table(path)
    names = _columns(path, table, ("symbol", "sector"))
    allowed = {str(s).lower(): str(s) for s in (*SECTORS, UNKNOWN_SECTOR)}
    sectors: dict[str, str] = {}
    for row, (symbol, sector) in enumerate(zip(table[names["symbol"]], table[names["sector"]],
                                               strict=True), start=1):
        symbol, key = str(symbol).strip().upper(), " ".join(str(sector).split()).lower()
        try:
            check_symbol(symbol)
        except UnsafeSymbolError as exc:
            raise MalformedFileError(path, str(exc), row=row, column=names["symbol"], value=symbol) from None
        if key not in allowed:
            raise MalformedFileError(path, f"{sector!r} is not a GICS sector (one of: "
                                     f"{', '.join(allowed.values())})", row=row, column=names["sector"],
                                     value=sector)
        if symbol in sectors:
            raise MalformedFileError(path, f"{symbol} is listed twice", row=row, column=names["symbol"],
                                     value=symbol)
        sectors[symbol] = allowed[key]
    return sectors


def folder_universe(source: CsvSource, configured: Universe, market_proxy: str | None = None) -> Universe:
    """The universe a folder of files makes (see the module docstring): its members are the
    symbol files other than the proxy's and the VIX's. Members without a sector get
    ``Unknown``, which ``source.notes`` reports.

    Raises
    ------
    SymbolNotAvailable
        If the folder has no file for the market proxy, or no file besides it.
    """
    proxy = check_symbol(market_proxy or configured.market_proxy)
    held = source.available_symbols()
    if proxy not in held:
        raise SymbolNotAvailable(
            f"no file for the market proxy {proxy} in {source.directory}: add {proxy}.csv, or name "
            "the proxy's file with market.sources.csv.market_proxy")
    symbols = [s for s in held if s != proxy]
    if not symbols:
        raise SymbolNotAvailable(f"{source.directory} holds only the market proxy {proxy}: "
                                 "add a file per stock")
    listed = {m.symbol: m.sector for m in configured.members}
    path = source.directory / SECTORS_FILE
    given = read_sectors(path) if path.is_file() else {}
    members = [UniverseMember(symbol=s, sector=listed.get(s, given.get(s, UNKNOWN_SECTOR))) for s in symbols]
    unknown = [m.symbol for m in members if str(m.sector) == UNKNOWN_SECTOR]
    if unknown:
        source.notes = (f"no sector for {', '.join(unknown)} (not in market.universe nor in "
                        f"{path}): sector {UNKNOWN_SECTOR}",)
    return Universe(market_proxy=proxy, vix_symbol=configured.vix_symbol, members=tuple(members))
