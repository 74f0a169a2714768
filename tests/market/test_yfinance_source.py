"""YFinanceSource: yfinance 1.7's frames normalised, failures retried then refused, the deadline
holding even when yfinance blocks, and the real ``yfinance.download`` with no network.

The injected downloads build their frames the way ``yfinance.multi._download_impl`` does
(1.7.0): one ``Ticker.history(auto_adjust=True, actions=False)`` frame per ticker (columns
``Open, High, Low, Close, Volume``, index ``Date`` at midnight), ``utils.empty_df()`` (which
adds ``Adj Close``) for a failed ticker, ``multi.reindex_dfs`` to the union of dates (the NaN
padding), ``concat(keys=tickers, names=['Ticker', 'Price'])``, then for ``group_by='column'``
``swaplevel`` and ``sort_index(level=0)``. yfinance's own helpers are used where it has them.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from yfinance import multi as yf_multi
from yfinance import utils as yf_utils
from yfinance.exceptions import YFRateLimitError

from market.cache import BarCache
from market.calendar import last_closed_session
from market.config import YFinanceSettings
from market.sources.base import MarketSource, PartialFetch, SourceUnavailable
from market.sources.yfinance_source import YahooUnreachable, YFinanceSource
from market.symbols import UnsafeSymbolError
from market.validation import validate_bars
from market.vocabulary import BAR_COLUMNS

START, END = date(2024, 3, 4), date(2024, 3, 8)  # Monday to Friday, five sessions
SESSIONS = pd.bdate_range("2024-03-04", "2024-03-08")
FAST = YFinanceSettings(batch_size=25, max_retries=2, backoff_seconds=0.5, deadline_seconds=30)


# -- frames shaped like yfinance 1.7's ---------------------------------------------------------


def history(dates: Sequence[pd.Timestamp] | pd.DatetimeIndex, base: float) -> pd.DataFrame:
    """What ``Ticker.history(interval='1d', auto_adjust=True, actions=False)`` returns once
    ``download`` has dropped the exchange time zone (``ignore_tz``)."""
    n = len(dates)
    close = base + np.arange(n, dtype=float)
    index = pd.to_datetime(pd.DatetimeIndex(dates).date).tz_localize("America/New_York")
    frame = pd.DataFrame(
        {"Open": close - 0.5, "High": close + 1.0, "Low": close - 1.0, "Close": close,
         "Volume": np.full(n, 1_000_000, dtype=np.int64)},
        index=index,
    )
    frame.index = frame.index.tz_localize(None)
    frame.index.name = "Date"
    return frame


def download_frame(per_ticker: dict[str, pd.DataFrame | None], group_by: str = "column") -> pd.DataFrame:
    """``yf.download``'s result for these per-ticker histories (``None``: the ticker failed)."""
    dfs = {t: (yf_utils.empty_df() if df is None else df.copy()) for t, df in per_ticker.items()}
    dfs = yf_multi.reindex_dfs(dfs, True)
    data = pd.concat(dfs.values(), axis=1, sort=True, keys=dfs.keys(), names=["Ticker", "Price"])
    if group_by == "column":
        data.columns = data.columns.swaplevel(0, 1)
        data = data.sort_index(level=0, axis=1)
    return data


class FakeDownload:
    """Answers each call with the next scripted reply (a frame factory or an exception) and
    records what it was asked."""

    def __init__(self, *replies: Callable[[list[str]], pd.DataFrame] | BaseException) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[list[str], dict[str, Any]]] = []

    def __call__(self, tickers: list[str], **kwargs: Any) -> pd.DataFrame:
        self.calls.append((list(tickers), kwargs))
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, BaseException):
            raise reply
        return reply(list(tickers))


def succeed(tickers: list[str]) -> pd.DataFrame:
    return download_frame({t: history(SESSIONS, 100.0 + 10 * i) for i, t in enumerate(tickers)})


def offline(tickers: list[str]) -> pd.DataFrame:
    return download_frame(dict.fromkeys(tickers))


def recorder() -> tuple[list[float], Callable[[float], None]]:
    sleeps: list[float] = []
    return sleeps, sleeps.append


# -- the frames themselves --------------------------------------------------------------------


def test_the_offline_frame_matches_what_yfinance_17_returns() -> None:
    frame = offline(["SPY"])
    assert frame.shape == (0, 6)
    assert frame.columns.names == ["Price", "Ticker"]
    assert list(frame.columns.get_level_values(0)) == [
        "Adj Close", "Close", "High", "Low", "Open", "Volume"]
    assert isinstance(frame.index, pd.DatetimeIndex) and frame.index.dtype == "datetime64[s]"


# -- normalisation ----------------------------------------------------------------------------


def test_one_ticker_is_normalised_to_a_canonical_frame() -> None:
    download = FakeDownload(succeed)
    source = YFinanceSource(FAST, download=download, sleep=recorder()[1])
    assert isinstance(source, MarketSource)
    frames = source.fetch_bars(["AAPL"], START, END)
    bars = frames["AAPL"]
    assert list(bars.columns) == list(BAR_COLUMNS)
    assert bars.index.name == "date" and bars.index.tz is None
    assert bars.index.dtype == "datetime64[ns]"
    assert (bars.dtypes == "float64").all()
    assert list(bars.index) == list(SESSIONS)
    assert bars["close"].tolist() == [100.0, 101.0, 102.0, 103.0, 104.0]
    validate_bars("AAPL", bars)
    tickers, kwargs = download.calls[0]
    assert tickers == ["AAPL"]
    assert kwargs["auto_adjust"] is True and kwargs["actions"] is False
    assert kwargs["progress"] is False and kwargs["group_by"] == "column"
    assert kwargs["start"] == "2024-03-04" and kwargs["end"] == "2024-03-09"  # end is exclusive
    assert source.info.real and source.info.provenance == "Yahoo Finance via yfinance"
    assert source.available_symbols() is None


def test_several_tickers_split_drop_padding_rows_and_clip_to_the_range() -> None:
    wide = pd.bdate_range("2024-02-29", "2024-03-11")  # Yahoo may answer past the range
    late = SESSIONS[2:]  # listed on Wednesday: padded with NaN on Monday and Tuesday

    def reply(tickers: list[str]) -> pd.DataFrame:
        return download_frame({"MSFT": history(wide, 400.0), "BRK-B": history(late, 30.0),
                               "SPY": history(wide, 500.0)})

    source = YFinanceSource(FAST, download=FakeDownload(reply), sleep=recorder()[1])
    frames = source.fetch_bars(["MSFT", "BRK-B", "SPY"], START, END)
    assert list(frames) == ["MSFT", "BRK-B", "SPY"]
    assert list(frames["MSFT"].index) == list(SESSIONS)
    assert frames["MSFT"]["close"].iloc[0] == 402.0  # 2024-03-04 is the third row of `wide`
    assert list(frames["BRK-B"].index) == list(late)
    assert not frames["BRK-B"].isna().any().any()


def test_single_level_columns_and_group_by_ticker_are_understood() -> None:
    def single(tickers: list[str]) -> pd.DataFrame:
        return history(SESSIONS, 50.0)  # multi_level_index=False for one ticker

    def by_ticker(tickers: list[str]) -> pd.DataFrame:
        return download_frame({t: history(SESSIONS, 60.0) for t in tickers}, group_by="ticker")

    one = YFinanceSource(FAST, download=FakeDownload(single)).fetch_bars(["IBM"], START, END)
    assert one["IBM"]["close"].iloc[0] == 50.0
    two = YFinanceSource(FAST, download=FakeDownload(by_ticker)).fetch_bars(
        ["IBM", "GE"], START, END)
    assert two["GE"]["open"].iloc[0] == 59.5


def test_batches_hold_at_most_batch_size_tickers() -> None:
    download = FakeDownload(succeed)
    settings = FAST.model_copy(update={"batch_size": 2})
    frames = YFinanceSource(settings, download=download).fetch_bars(
        ["A", "B", "C", "D", "E"], START, END)
    assert [call[0] for call in download.calls] == [["A", "B"], ["C", "D"], ["E"]]
    assert list(frames) == ["A", "B", "C", "D", "E"]


def test_a_range_without_sessions_returns_empty_frames_without_downloading() -> None:
    download = FakeDownload(offline)
    frames = YFinanceSource(FAST, download=download).fetch_bars(
        ["AAPL"], date(2024, 3, 9), date(2024, 3, 10))  # a weekend
    assert frames["AAPL"].empty and list(frames["AAPL"].columns) == list(BAR_COLUMNS)
    assert download.calls == []


def test_fetch_vix_returns_the_vix_close() -> None:
    download = FakeDownload(lambda tickers: download_frame({"^VIX": history(SESSIONS, 14.0)}))
    vix = YFinanceSource(FAST, download=download).fetch_vix(START, END)
    assert download.calls[0][0] == ["^VIX"]
    assert vix.name == "vix" and vix.index.name == "date"
    assert vix.tolist() == [14.0, 15.0, 16.0, 17.0, 18.0]


# -- failures, retries, backoff ---------------------------------------------------------------


def test_an_all_nan_ticker_is_retried_alone_then_refused_by_name() -> None:
    def half(tickers: list[str]) -> pd.DataFrame:
        return download_frame({t: None if t == "ZZZZ" else history(SESSIONS, 10.0) for t in tickers})

    download = FakeDownload(half)
    sleeps, sleep = recorder()
    source = YFinanceSource(FAST, download=download, sleep=sleep)
    with pytest.raises(SourceUnavailable, match=r"no usable data for 1 symbol \(ZZZZ\) after 3 attempts") as caught:
        source.fetch_bars(["AAPL", "ZZZZ"], START, END)
    assert "AAPL" not in str(caught.value).split("Last reason")[0]
    assert "ZZZZ: empty frame" in str(caught.value)  # alone, a failed ticker gives an empty frame
    assert [call[0] for call in download.calls] == [["AAPL", "ZZZZ"], ["ZZZZ"], ["ZZZZ"]]
    assert sleeps == [0.5, 1.0]


def test_a_failed_ticker_is_retried_alone_and_the_result_is_complete() -> None:
    def half(tickers: list[str]) -> pd.DataFrame:
        return download_frame({t: None if t == "MSFT" else history(SESSIONS, 10.0) for t in tickers})

    download = FakeDownload(half, succeed)
    sleeps, sleep = recorder()
    frames = YFinanceSource(FAST, download=download, sleep=sleep).fetch_bars(
        ["AAPL", "MSFT"], START, END)
    assert [call[0] for call in download.calls] == [["AAPL", "MSFT"], ["MSFT"]]
    assert list(frames) == ["AAPL", "MSFT"] and sleeps == [0.5]
    assert frames["AAPL"]["close"].iloc[0] == 10.0 and frames["MSFT"]["close"].iloc[0] == 100.0


def test_what_yfinance_logs_is_quoted_as_the_reason() -> None:
    def logs_and_returns_empty(tickers: list[str]) -> pd.DataFrame:
        logging.getLogger("yfinance").error("%s: DNSError('Could not resolve host')", tickers)
        return offline(tickers)

    download = FakeDownload(logs_and_returns_empty)
    source = YFinanceSource(FAST.model_copy(update={"max_retries": 0}), download=download)
    with pytest.raises(SourceUnavailable, match=r"yfinance logged: \['AAPL'\]: DNSError"):
        source.fetch_bars(["AAPL"], START, END)


def test_a_missing_ticker_column_is_a_failure() -> None:
    download = FakeDownload(lambda tickers: download_frame({"AAPL": history(SESSIONS, 10.0)}))
    source = YFinanceSource(FAST.model_copy(update={"max_retries": 0}), download=download)
    with pytest.raises(SourceUnavailable, match=r"\(MSFT\) after 1 attempt\. .*no column for the ticker"):
        source.fetch_bars(["AAPL", "MSFT"], START, END)


def test_an_empty_frame_is_retried_with_exponential_backoff_then_refused() -> None:
    download = FakeDownload(offline)
    sleeps, sleep = recorder()
    settings = FAST.model_copy(update={"max_retries": 3, "backoff_seconds": 2.0})
    with pytest.raises(SourceUnavailable, match=r"2 symbols \(AAPL, MSFT\) after 4 attempts.*empty frame"):
        YFinanceSource(settings, download=download, sleep=sleep).fetch_bars(
            ["AAPL", "MSFT"], START, END)
    assert sleeps == [2.0, 4.0, 8.0]
    assert len(download.calls) == 4


def test_a_rate_limit_then_success_waits_the_backoff() -> None:
    download = FakeDownload(YFRateLimitError(), YFRateLimitError(), succeed)
    sleeps, sleep = recorder()
    settings = FAST.model_copy(update={"backoff_seconds": 2.0})
    frames = YFinanceSource(settings, download=download, sleep=sleep).fetch_bars(
        ["AAPL"], START, END)
    assert sleeps == [2.0, 4.0]
    assert len(frames["AAPL"]) == 5


def test_a_timeout_is_retried_and_named() -> None:
    download = FakeDownload(TimeoutError("curl: (28) Connection timed out after 30001 milliseconds"))
    sleeps, sleep = recorder()
    with pytest.raises(SourceUnavailable, match=r"network failure \(TimeoutError: curl: \(28\)"):
        YFinanceSource(FAST, download=download, sleep=sleep).fetch_bars(["AAPL"], START, END)
    assert len(download.calls) == 3 and sleeps == [0.5, 1.0]


def test_a_refused_connection_is_not_retried() -> None:
    download = FakeDownload(ConnectionRefusedError(111, "Connection refused"))
    sleeps, sleep = recorder()
    with pytest.raises(YahooUnreachable, match=r"cannot be reached: ConnectionRefusedError.*1 symbol \(AAPL\)"):
        YFinanceSource(FAST, download=download, sleep=sleep).fetch_bars(["AAPL"], START, END)
    assert len(download.calls) == 1 and sleeps == []


DNS_LOG = ("['{t}']: DNSError('Failed to perform, curl: (6) Could not resolve host: query2.finance.yahoo.com. "
           "See https://curl.se/libcurl/c/libcurl-errors.html first for more details.')")


def test_a_name_resolution_failure_stops_the_whole_fetch_at_once_with_one_short_line() -> None:
    """What yf.download does offline: no exception, an empty frame, the curl error in its log, and
    for the other tickers of the batch the misleading "possibly delisted; no timezone found"."""
    def offline_logged(tickers: list[str]) -> pd.DataFrame:
        log = logging.getLogger("yfinance")
        log.error(DNS_LOG.format(t=tickers[0]))
        log.error("%s: possibly delisted; no timezone found", tickers[1:])
        return offline(tickers)

    download = FakeDownload(offline_logged)
    sleeps, sleep = recorder()
    symbols = [f"S{i}" for i in range(77)]
    with pytest.raises(YahooUnreachable) as caught:
        YFinanceSource(YFinanceSettings(), download=download, sleep=sleep).fetch_bars(symbols, START, END)
    message = str(caught.value)
    assert len(download.calls) == 1 and sleeps == []  # one batch of 25, no retry, no other batch
    assert "Could not resolve host: query2.finance.yahoo.com (curl error 6)" in message
    assert "77 symbols (S0, S1, S2, S3, S4 and 72 more)" in message
    assert "possibly delisted" not in message and "S76" not in message and "\n" not in message
    assert len(message) < 300


def test_a_bug_in_the_download_is_not_retried_or_disguised() -> None:
    download = FakeDownload(TypeError("unexpected keyword"))
    with pytest.raises(TypeError, match="unexpected keyword"):
        YFinanceSource(FAST, download=download).fetch_bars(["AAPL"], START, END)
    assert len(download.calls) == 1


def test_no_retry_is_started_that_would_end_past_the_deadline() -> None:
    download = FakeDownload(offline)
    sleeps, sleep = recorder()
    settings = YFinanceSettings(max_retries=4, backoff_seconds=2.0, deadline_seconds=5.0)
    with pytest.raises(SourceUnavailable, match=r"5 s deadline .* would pass before retry 3 "
                                                 r"\(after a 8 s backoff\)"):
        YFinanceSource(settings, download=download, sleep=sleep).fetch_bars(["AAPL"], START, END)
    assert sleeps == [2.0, 4.0]  # the recorder does not sleep: 2 s and 4 s fit in 5 s, 8 s does not
    assert len(download.calls) == 3


def test_unsafe_symbols_are_refused_before_any_download() -> None:
    download = FakeDownload(succeed)
    source = YFinanceSource(FAST, download=download)
    for bad in ("../etc", "aapl", "A B", ""):
        with pytest.raises(UnsafeSymbolError):
            source.fetch_bars(["AAPL", bad], START, END)
    assert download.calls == []


# -- the deadline -----------------------------------------------------------------------------


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Lets the blocked fake downloads finish when the test ends."""
    event = threading.Event()
    yield event
    event.set()


def test_a_download_that_blocks_is_cut_off_at_the_deadline(release: threading.Event) -> None:
    def blocks(tickers: list[str]) -> pd.DataFrame:
        release.wait(60)
        return succeed(tickers)

    settings = YFinanceSettings(deadline_seconds=1.5, max_retries=3, backoff_seconds=0.1)
    source = YFinanceSource(settings, download=FakeDownload(blocks))
    began = time.monotonic()
    with pytest.raises(SourceUnavailable, match=r"1\.5 s deadline .* passed .*AAPL.*could not be reached"):
        source.fetch_bars(["AAPL"], START, END)
    assert time.monotonic() - began < settings.deadline_seconds + 1.0


# -- the real yfinance.download, with no network ------------------------------------------------


@pytest.mark.timeout(60)  # a hang guard: offline must fail, not wait
def test_real_yfinance_without_network_fails_clearly_at_once_and_quietly() -> None:
    """The real yf.download with no network (DNS fails here, as for a user offline): one short
    error naming the cause, no retry, and none of yfinance's deprecation warnings."""
    sleeps, sleep = recorder()
    source = YFinanceSource(YFinanceSettings(), sleep=sleep)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            frames = source.fetch_bars(["SPY", "AAPL", "MSFT"], START, END)
        except SourceUnavailable as error:
            message = str(error)
            assert isinstance(error, YahooUnreachable), message
            assert "cannot be reached" in message and "3 symbols (SPY, AAPL, MSFT)" in message
            assert "curl error" in message and "possibly delisted" not in message and len(message) < 300
            assert sleeps == []
            assert [w for w in caught if "yfinance" in w.filename] == []
            return
    # Some machine did reach Yahoo: then the result must be real data, never an empty frame.
    assert all(len(frame) == 5 for frame in frames.values())
    pytest.skip("Yahoo Finance was reachable from this machine, so the offline case did not occur")


class BlackHole:
    """A loopback TCP listener that accepts connections and never answers."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, name="black-hole", daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.connections.append(connection)

    def close(self) -> None:
        """Stop listening and reset every held connection, so the download yfinance is still
        running in its abandoned thread fails at once instead of waiting out curl's timeouts."""
        try:
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        except OSError:
            pass
        self.server.close()
        self.thread.join(5)
        for connection in self.connections:
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.close()


@pytest.mark.network_sim
@pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")
def test_a_black_hole_proxy_is_bounded_by_the_deadline() -> None:
    import yfinance as yf

    hole = BlackHole()
    previous = yf.config.network.proxy
    yf.config.network.proxy = f"http://127.0.0.1:{hole.port}"
    try:
        settings = YFinanceSettings(deadline_seconds=3.0, max_retries=2, backoff_seconds=0.2)
        source = YFinanceSource(settings)
        began = time.monotonic()
        with pytest.raises(SourceUnavailable, match=r"3 s deadline .* passed .*could not be reached"):
            source.fetch_bars(["SPY"], START, END)
        elapsed = time.monotonic() - began
        assert elapsed < settings.deadline_seconds + 1.0
        assert hole.connections, "yfinance never reached the black-hole proxy"
    finally:
        yf.config.network.proxy = previous
        hole.close()
        for thread in threading.enumerate():  # the abandoned download now fails fast: let it end
            if thread.name.startswith("yfinance-download-"):
                thread.join(10)


# -- partial answers and sessions still trading ---------------------------------------------------


def test_what_yahoo_returned_is_kept_when_other_symbols_never_come(tmp_path: Path) -> None:
    download = FakeDownload(lambda tickers: download_frame(
        {t: history(SESSIONS, 100.0) if t != "GONE" else None for t in tickers}))
    source = YFinanceSource(FAST, download=download, sleep=recorder()[1])
    with pytest.raises(PartialFetch) as caught:
        source.fetch_bars(["AAPL", "GONE", "MSFT"], START, END)
    assert set(caught.value.frames) == {"AAPL", "MSFT"} and set(caught.value.refused) == {"GONE"}

    cache = BarCache(tmp_path, "yfinance")
    refused: dict[str, str] = {}
    results = cache.refresh(source, ["AAPL", "GONE", "MSFT"], START, END, refused=refused)
    assert [r.symbol for r in results] == ["AAPL", "MSFT"] and list(refused) == ["GONE"]
    assert cache.symbols() == ["AAPL", "MSFT"]


@pytest.mark.parametrize(("now", "last"), [
    ("2024-03-08 20:59", "2024-03-07"),  # Friday, an hour before the 16:00 New York close (21:00 UTC)
    ("2024-03-08 21:00", "2024-03-08"),
    ("2024-03-09 12:00", "2024-03-08"),  # a Saturday
])
def test_a_session_still_trading_is_never_requested(now: str, last: str) -> None:
    download = FakeDownload(succeed)  # answers every session asked for, the running one included
    source = YFinanceSource(FAST, download=download, sleep=recorder()[1],
                            now=lambda: pd.Timestamp(now, tz="UTC"))
    bars = source.fetch_bars(["AAPL"], START, END)["AAPL"]
    assert str(bars.index[-1].date()) == last
    assert download.calls[-1][1]["end"] == str((pd.Timestamp(last) + pd.Timedelta(days=1)).date())


def test_an_early_close_counts_as_closed_at_its_early_hour() -> None:
    friday = date(2026, 11, 27)  # the day after Thanksgiving closes at 13:00 New York (18:00 UTC)
    source = YFinanceSource(FAST, download=FakeDownload(succeed), sleep=recorder()[1],
                            now=lambda: pd.Timestamp("2026-11-27 17:30", tz="UTC"))
    assert source.fetch_bars(["AAPL"], friday, friday)["AAPL"].empty
    assert source.fetch_vix(friday, friday).empty
    assert last_closed_session(pd.Timestamp("2026-11-27 18:05", tz="UTC")) == pd.Timestamp(friday)
