"""Daily bars and the VIX from Yahoo Finance through yfinance, bounded by a deadline.

How yfinance 1.7 fails, and what this adapter does about it (see
``shared/notes/data-sources.md``):

* ``yf.download`` does not raise when Yahoo cannot be reached: it logs an error on the
  ``yfinance`` logger and returns an empty frame, or a frame whose column for the failed ticker
  is all NaN. Both count as a failure of that ticker here; so does a ticker column that is
  missing. The reasons yfinance logs during the call are quoted in the error.
* On a network that silently drops packets one call can block for ~130 s, and yfinance's own
  ``timeout`` does not bound it. Each download therefore runs in a daemon thread that the
  caller waits on with a timeout; past ``deadline_seconds`` (for the whole fetch, retries
  included) :class:`SourceUnavailable` is raised and the abandoned thread is left to finish
  on its own (a daemon thread never holds up interpreter exit, unlike a ``ThreadPoolExecutor``
  worker or yfinance's own ``threads=True`` workers, which are not daemons; that is why
  downloads run with ``threads=False``).
* Failures that retrying cannot fix end the fetch at once, for every symbol still pending:
  a host name that does not resolve (no network, no DNS: curl error 6, or 5 for a proxy) and a
  refused connection (curl error 7), whether yfinance raises them (curl_cffi's ``DNSError`` and
  ``ConnectionError`` derive from ``OSError``) or only logs them, as ``yf.download`` does. Offline
  that takes well under a second instead of the whole backoff schedule.
* Other failed tickers are retried, only them, after ``backoff_seconds * 2**attempt`` (no
  jitter), up to ``max_retries`` times, and never past the deadline: when the next wait would
  end after it, the fetch stops at once. Retried: empty or all-NaN results, missing ticker
  columns, ``YFRateLimitError`` and any other ``YFException``, timeouts and other ``OSError``.
  Anything else a download raises is a bug and propagates unchanged.
* The error is one short line: the cause (the curl message when there is one, not yfinance's
  misleading "possibly delisted; no timezone found" for the other tickers of a batch), how
  many symbols it affected and the first few of them.
* yfinance's own deprecation warnings (pandas' ``inplace`` keyword, from ``yfinance.multi``)
  are filtered out, so they do not reach the user's terminal; warnings from other modules
  are left alone.

Frames are requested with ``auto_adjust=True`` (``Close`` is the adjusted close and
open/high/low are scaled with it; the ``Adj Close`` column yfinance still adds for failed
tickers is ignored). yfinance pads each ticker with NaN rows on the other tickers' dates of a
batch; rows with any NaN price are dropped, a NaN volume with prices present becomes 0 (as
yfinance itself does for a single ticker), and rows are clipped to the inclusive range
(yfinance's ``end`` is exclusive, so ``end + 1 day`` is requested). A range holding no NYSE
session returns empty frames without a download.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pandas as pd

from market.calendar import last_closed_session, nyse_sessions
from market.config import YFinanceSettings
from market.sources.base import (
    MarketDataError,
    PartialFetch,
    SourceInfo,
    SourceUnavailable,
    conform_bars,
    date_range,
    empty_bars,
)
from market.symbols import check_symbol
from market.validation import BarValidationError, validate_bars
from market.vocabulary import BAR_COLUMNS, PRICE_COLUMNS

VIX_SYMBOL = "^VIX"
_FIELDS = frozenset({*BAR_COLUMNS, "adj close", "dividends", "stock splits", "capital gains"})
_LOG_CHARS = 400
#: curl error codes after which a retry cannot succeed: the network is not there.
_UNREACHABLE_CURL_CODES = frozenset({5, 6, 7})
_CURL_ERROR = re.compile(r"curl: \((\d+)\) (.+?)\.?(?= See | \(|'\)|\"\)| \| |\n|$)")
_NAMED_SYMBOLS = 5


class YahooUnreachable(SourceUnavailable):
    """Yahoo Finance cannot be reached at all (no name resolution, connection refused): retrying
    is pointless, so the fetch stops at once."""


def _unreachable_cause(text: str) -> str | None:
    """The curl message in ``text`` when it says the network is not there, else ``None``.

    >>> _unreachable_cause("DNSError('Failed to perform, curl: (6) Could not resolve host: "
    ...                    "query2.finance.yahoo.com. See https://curl.se')")
    'Could not resolve host: query2.finance.yahoo.com (curl error 6)'
    >>> _unreachable_cause("curl: (28) Connection timed out after 30001 milliseconds") is None
    True
    """
    for code, message in _CURL_ERROR.findall(text):
        if int(code) in _UNREACHABLE_CURL_CODES:
            return f"{message} (curl error {code})"
    return None


def _quiet_yfinance() -> None:
    """Keep yfinance's deprecation warnings out of the user's terminal (idempotent: the warnings
    module moves an identical filter to the front instead of adding it again)."""
    for category in (DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category, module=r"yfinance(\.|$)")


def _some(symbols: Sequence[str]) -> str:
    """``N symbols (A, B, C, D, E and 3 more)``: how many, and the first few by name."""
    named = ", ".join(symbols[:_NAMED_SYMBOLS])
    more = f" and {len(symbols) - _NAMED_SYMBOLS} more" if len(symbols) > _NAMED_SYMBOLS else ""
    return f"{len(symbols)} symbol{'s' if len(symbols) != 1 else ''} ({named}{more})"


def _field(label: object) -> str:
    return str(label).strip().lower().replace("_", " ")


class _ThreadLog(logging.Handler):
    """Collects the errors the ``yfinance`` logger emits from one thread (its warnings, such as
    "Cookie/crumb fetch failed", repeat what the errors say)."""

    def __init__(self, thread_id: int) -> None:
        super().__init__(level=logging.ERROR)
        self.thread_id = thread_id
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread_id:
            message = record.getMessage().strip()
            if message and message not in self.messages:
                self.messages.append(message)


@dataclass
class _Outcome:
    """What one download call produced: a frame, or the exception it raised, and the log."""

    frame: Any = None
    error: BaseException | None = None
    log: list[str] = field(default_factory=list)


def _ticker_level(columns: pd.MultiIndex) -> int:
    """Which of two column levels holds the tickers (``group_by`` column or ticker)."""
    names = [str(name).lower() if name is not None else "" for name in columns.names]
    if "ticker" in names:
        return names.index("ticker")
    if "price" in names:
        return 1 - names.index("price")
    for level in (0, 1):
        if all(_field(v) in _FIELDS for v in columns.get_level_values(level).unique()):
            return 1 - level
    raise MarketDataError(f"cannot tell tickers from fields in yfinance columns {list(columns)}")


def _per_ticker(frame: pd.DataFrame, tickers: Sequence[str]) -> dict[str, pd.DataFrame | None]:
    """Each ticker's sub-frame with lower-case field columns, or ``None`` when it is absent."""
    columns = frame.columns
    if isinstance(columns, pd.MultiIndex):
        if columns.nlevels != 2:
            raise MarketDataError(f"unexpected yfinance columns with {columns.nlevels} levels")
        level = _ticker_level(columns)
        present = set(columns.get_level_values(level))
        out: dict[str, pd.DataFrame | None] = {}
        for ticker in tickers:
            if ticker not in present:
                out[ticker] = None
                continue
            sub = frame.xs(ticker, axis=1, level=level)
            sub.columns = [_field(c) for c in sub.columns]
            out[ticker] = sub
        return out
    if len(tickers) != 1:
        raise MarketDataError(
            f"yfinance returned single-level columns for {len(tickers)} tickers; "
            "cannot tell which column belongs to which ticker"
        )
    sub = frame.copy()
    sub.columns = [_field(c) for c in sub.columns]
    return {tickers[0]: sub}


def _to_bars(
    ticker: str, sub: pd.DataFrame, first: pd.Timestamp, last: pd.Timestamp
) -> pd.DataFrame | str:
    """A canonical frame for one ticker, or the reason it is unusable."""
    absent = [c for c in BAR_COLUMNS if c not in sub.columns]
    if absent:
        raise MarketDataError(
            f"yfinance frame for {ticker} lacks {', '.join(absent)} (has {list(sub.columns)})"
        )
    bars = sub.loc[:, list(BAR_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    bars = bars.dropna(subset=list(PRICE_COLUMNS))
    if bars.empty:
        return "no prices (empty or all NaN)"
    bars["volume"] = bars["volume"].fillna(0.0)
    bars = conform_bars(bars)
    bars = bars.loc[(bars.index >= first) & (bars.index <= last)]
    if bars.empty:
        return f"no rows between {first.date()} and {last.date()}"
    return bars


class YFinanceSource:
    """Daily bars and VIX from Yahoo Finance, batched, retried and bounded by a deadline.

    Parameters
    ----------
    settings
        Batch size, retries, backoff and the whole-fetch deadline.
    download
        The download function, ``yfinance.download`` when ``None`` (imported on first use).
        Tests pass a function that returns frames shaped like yfinance 1.7's.
    sleep
        Called with the backoff delay between retries.
    now
        The clock (a UTC timestamp): nothing after the latest NYSE session that has closed by
        then is requested (:func:`market.calendar.last_closed_session`, early closes included),
        so a bar of a session still trading is never served, cached, or later mistaken for a
        re-adjustment when its close changes.

    ``fetch_bars`` validates every frame with :func:`market.validation.validate_bars`; the
    failures it retries and its deadline are described in the module docstring. When some
    tickers still fail it raises :class:`SourceUnavailable` naming them and the last reason; it
    never returns a partial result or an empty frame in place of an error.

    Examples
    --------
    A download that answers like yfinance 1.7 offline (an empty frame) is retried, then
    refused:

    >>> from datetime import date
    >>> import pandas as pd
    >>> def offline(tickers, **kwargs):
    ...     columns = pd.MultiIndex.from_product(
    ...         [["Adj Close", "Close", "High", "Low", "Open", "Volume"], tickers],
    ...         names=["Price", "Ticker"])
    ...     return pd.DataFrame(index=pd.DatetimeIndex([]), columns=columns)
    >>> waits = []
    >>> source = YFinanceSource(YFinanceSettings(max_retries=2, backoff_seconds=0.5),
    ...                         download=offline, sleep=waits.append)
    >>> source.fetch_bars(["AAPL"], date(2020, 1, 2), date(2020, 1, 31))
    Traceback (most recent call last):
    ...
    market.sources.base.SourceUnavailable: Yahoo Finance returned no usable data for 1 symbol (AAPL)...
    >>> waits
    [0.5, 1.0]
    """

    def __init__(
        self,
        settings: YFinanceSettings = YFinanceSettings(),  # noqa: B008 - frozen pydantic model
        *,
        download: Callable[..., Any] | None = None,
        sleep: Callable[[float], object] = time.sleep,
        now: Callable[[], pd.Timestamp] = lambda: pd.Timestamp.now(tz="UTC"),
    ) -> None:
        self.settings = settings
        self.download = download
        self.sleep = sleep
        self.now = now
        self.info = SourceInfo(name="yfinance", real=True, provenance="Yahoo Finance via yfinance")

    def available_symbols(self) -> None:
        """Any symbol Yahoo knows: there is no list."""
        return None

    def fetch_bars(
        self, symbols: Sequence[str], start: date, end: date
    ) -> dict[str, pd.DataFrame]:
        started = time.monotonic()
        wanted = list(dict.fromkeys(check_symbol(symbol) for symbol in symbols))
        first, last = self._closed_range(start, end)
        if last < first:
            return {symbol: empty_bars() for symbol in wanted}
        try:
            frames = self._fetch(wanted, first, last, started)
        except PartialFetch as partial:
            for symbol, frame in partial.frames.items():
                validate_bars(symbol, frame)
            raise
        for symbol, frame in frames.items():
            validate_bars(symbol, frame)
        return frames

    def fetch_vix(self, start: date, end: date) -> pd.Series:
        """The ``^VIX`` close in ``[start, end]`` as a float series named ``vix``."""
        started = time.monotonic()
        first, last = self._closed_range(start, end)
        if last < first:
            return pd.Series(dtype="float64", index=empty_bars().index, name="vix")
        close = self._fetch([VIX_SYMBOL], first, last, started)[VIX_SYMBOL]["close"]
        bad = (close <= 0).to_numpy()
        if bad.any():
            raise BarValidationError(VIX_SYMBOL, close.index[bad.argmax()], "close",
                                     "prices must be positive")
        return close.rename("vix")

    def _closed_range(self, start: date, end: date) -> tuple[pd.Timestamp, pd.Timestamp]:
        """``[start, end]`` with ``end`` cut to the latest session closed by :attr:`now`."""
        first, last = date_range(start, end)
        return first, min(last, last_closed_session(self.now()))

    # -- the fetch loop ---------------------------------------------------------------------

    def _fetch(
        self, symbols: list[str], first: pd.Timestamp, last: pd.Timestamp, started: float
    ) -> dict[str, pd.DataFrame]:
        """Download ``symbols`` with retries, all within the deadline counted from ``started``."""
        if not symbols:
            return {}
        if len(nyse_sessions(first, last)) == 0:
            return {symbol: empty_bars() for symbol in symbols}
        settings = self.settings
        deadline = started + settings.deadline_seconds
        got: dict[str, pd.DataFrame] = {}
        reasons: dict[str, str] = {}
        pending = list(symbols)
        attempt = 0
        while True:
            for at in range(0, len(pending), settings.batch_size):
                batch = pending[at : at + settings.batch_size]
                outcome = self._download(batch, first, last, started, deadline, reasons)
                cause = _unreachable_cause(" | ".join([*outcome.log, repr(outcome.error or "")]))
                if cause is None and isinstance(outcome.error, ConnectionRefusedError | socket.gaierror):
                    cause = f"{type(outcome.error).__name__}: {outcome.error}"
                if cause is not None:
                    missing = [symbol for symbol in symbols if symbol not in got]
                    raise YahooUnreachable(
                        f"Yahoo Finance cannot be reached: {cause}; {_some(missing)} not downloaded. "
                        "Check the network connection, or use the simulated, bundled or csv source"
                    )
                frames, failed = self._split(outcome, batch, first, last)
                got.update(frames)
                reasons.update(failed)
            pending = [symbol for symbol in symbols if symbol not in got]
            if not pending:
                return {symbol: got[symbol] for symbol in symbols}
            attempts = attempt + 1
            if attempt >= settings.max_retries:
                raise self._short(
                    f"Yahoo Finance returned no usable data for {_some(pending)} after "
                    f"{attempts} attempt{'s' if attempts > 1 else ''}. "
                    f"Last reason: {self._reasons(pending, reasons)}", symbols, got, pending, reasons,
                )
            delay = settings.backoff_seconds * 2**attempt
            if time.monotonic() + delay >= deadline:
                raise self._short(
                    f"the {settings.deadline_seconds:g} s deadline for Yahoo Finance would pass "
                    f"before retry {attempts} (after a {delay:g} s backoff), so "
                    f"{_some(pending)} could not be downloaded. "
                    f"Last reason: {self._reasons(pending, reasons)}", symbols, got, pending, reasons,
                )
            self.sleep(delay)
            attempt += 1

    @staticmethod
    def _short(
        message: str, symbols: Sequence[str], got: dict[str, pd.DataFrame], pending: Sequence[str],
        reasons: dict[str, str],
    ) -> SourceUnavailable:
        """The error for symbols still missing: a :class:`PartialFetch` carrying what did arrive
        when Yahoo answered for some of them, so the caller keeps those."""
        if not got:
            return SourceUnavailable(message)
        return PartialFetch(message, {s: got[s] for s in symbols if s in got},
                            {s: reasons.get(s, "unknown") for s in pending})

    def _download(
        self,
        batch: list[str],
        first: pd.Timestamp,
        last: pd.Timestamp,
        started: float,
        deadline: float,
        reasons: dict[str, str],
    ) -> _Outcome:
        """Run one download in a daemon thread; raise if it outlives the deadline."""
        download = self.download
        if download is None:
            import yfinance  # imported lazily: ~1 s

            download = yfinance.download
        _quiet_yfinance()
        outcome = _Outcome()

        def work() -> None:
            log = _ThreadLog(threading.get_ident())
            logger = logging.getLogger("yfinance")
            logger.addHandler(log)
            try:
                outcome.frame = download(
                    batch,
                    start=first.date().isoformat(),
                    end=(last.date() + timedelta(days=1)).isoformat(),
                    auto_adjust=True,
                    actions=False,
                    progress=False,
                    threads=False,
                    group_by="column",
                )
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
                outcome.error = exc
            finally:
                logger.removeHandler(log)
                outcome.log = log.messages

        finished = False
        remaining = deadline - time.monotonic()
        if remaining > 0:
            worker = threading.Thread(
                target=work, name=f"yfinance-download-{batch[0]}", daemon=True
            )
            worker.start()
            worker.join(remaining)
            finished = not worker.is_alive()
        if not finished:
            waited = time.monotonic() - started
            earlier = self._reasons(batch, reasons) if any(s in reasons for s in batch) else ""
            raise SourceUnavailable(
                f"the {self.settings.deadline_seconds:g} s deadline for Yahoo Finance passed "
                f"after {waited:.1f} s while downloading {_some(batch)}: Yahoo could not be "
                "reached (no answer in time; on a network that drops packets silently yfinance "
                "waits about 130 s per request)."
                + (f" Earlier reason: {earlier}" if earlier else "")
            )
        return outcome

    @staticmethod
    def _split(
        outcome: _Outcome, batch: list[str], first: pd.Timestamp, last: pd.Timestamp
    ) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
        """The usable frames of a batch, and the reason for each ticker that failed."""
        logged = ""
        if outcome.log:
            text = " | ".join(outcome.log)
            if len(text) > _LOG_CHARS:  # keep the end: yfinance logs its summary last
                text = "..." + text[-_LOG_CHARS:]
            logged = f"; yfinance logged: {text}"
        error = outcome.error
        if error is not None:
            from yfinance.exceptions import YFException, YFRateLimitError

            if isinstance(error, YFRateLimitError):
                reason = f"rate limited by Yahoo ({type(error).__name__}: {error})"
            elif isinstance(error, OSError):
                reason = f"network failure ({type(error).__name__}: {error})"
            elif isinstance(error, YFException):
                reason = f"{type(error).__name__}: {error}"
            else:
                raise error
            return {}, dict.fromkeys(batch, reason + logged)
        frame = outcome.frame
        if not isinstance(frame, pd.DataFrame):
            return {}, dict.fromkeys(batch, f"the download returned {type(frame).__name__}{logged}")
        if frame.empty:
            return {}, dict.fromkeys(batch, f"empty frame {frame.shape}{logged}")
        frames: dict[str, pd.DataFrame] = {}
        failed: dict[str, str] = {}
        for ticker, sub in _per_ticker(frame, batch).items():
            result = "no column for the ticker" if sub is None else _to_bars(ticker, sub, first, last)
            if isinstance(result, str):
                failed[ticker] = result + logged
            else:
                frames[ticker] = result
        return frames, failed

    @staticmethod
    def _reasons(tickers: Sequence[str], reasons: dict[str, str]) -> str:
        """Each distinct reason once, with the symbols it affected (the first few by name)."""
        grouped: dict[str, list[str]] = {}
        for ticker in tickers:
            grouped.setdefault(reasons.get(ticker, "unknown"), []).append(ticker)
        return "; ".join(
            f"{', '.join(group) if len(group) <= _NAMED_SYMBOLS else _some(group)}: {reason}"
            for reason, group in grouped.items()
        )
