"""LIVE: the universe re-evaluated while the worker runs, and markets that disappear.

Every ``refresh_minutes`` the worker loads the market list and the tickers again. A symbol
that enters is backfilled ``backfill_hours`` (from its listing when that is later: the
exchange has nothing before it) and then polled; one that leaves is no longer polled, its
rows stay. A market delisted between two refreshes answers "unknown symbol": its series is
set aside with one warning and looked at again at the next refresh, never every cycle.
"""

from __future__ import annotations

import logging
from typing import Callable

from core.series import SeriesKey
from worker.errors import CollectorError
from worker.session import ExchangeSession, series_extra

log = logging.getLogger(__name__)

DEFAULT_REFRESH_MINUTES = 60.0  # for set-aside series of an exchange without a universe


class UniverseRefresh:
    def __init__(self, session: ExchangeSession, *, on_enter: Callable[[SeriesKey, int | None], None],
                 on_leave: Callable[[SeriesKey], None]) -> None:
        self.session = session
        self._on_enter = on_enter
        self._on_leave = on_leave
        rules = session.exchange.universe
        self.period_s = (rules.refresh_minutes if rules is not None else DEFAULT_REFRESH_MINUTES) * 60
        self.backfill_ms = int((rules.backfill_hours if rules is not None else 0) * 3_600_000)
        self._last = session.clock()
        self.set_aside: set[SeriesKey] = set()

    def due(self) -> bool:
        wanted = self.session.exchange.universe is not None or bool(self.set_aside)
        return wanted and self.session.clock() - self._last >= self.period_s

    async def check_rejected(self, rejected: dict[SeriesKey, CollectorError]) -> None:
        """Series the exchange refused this cycle: load the market list once and set aside
        those whose market is gone or inactive (exchanges word "unknown symbol" differently,
        so the market list decides, not the error text)."""
        try:
            await self.session.client.reload_markets()
        except CollectorError as exc:
            log.warning("cannot reload the markets of %s: %s", self.session.exchange_id, exc,
                        extra={"event": "universe_refresh_error", "error": str(exc)[:300]})
            return
        markets = self.session.client.markets()
        for series, error in rejected.items():
            market = markets.get(series.symbol)
            if market is None or market.get("active") is False:
                self.set_aside_delisted(series, error)

    def set_aside_delisted(self, series: SeriesKey, error: CollectorError) -> None:
        """Stop polling a series whose market is gone until the next refresh."""
        if series in self.set_aside:
            return
        self.set_aside.add(series)
        if series in self.session.series:
            self.session.series.remove(series)
        self._on_leave(series)
        log.warning("%s is no longer served (%s); not polled until the market list is checked again",
                    series, error, extra=series_extra(series, "series_delisted", error=str(error)[:300]))

    async def refresh(self) -> None:
        """Markets and universe again; apply who entered and who left. Errors keep the old set."""
        session = self.session
        self._last = session.clock()
        try:
            await session.client.reload_markets()
            if session.exchange.universe is not None:
                session.universe = await session.select_universe()
        except CollectorError as exc:
            log.error("cannot refresh the universe of %s, keeping the current one: %s", session.exchange_id,
                      exc, extra={"event": "universe_refresh_error", "error": str(exc)[:300]})
            return
        before = set(session.series) | self.set_aside
        usable, skipped = session.usable_series(log_skips=False)
        self.set_aside.clear()
        added = [s for s in usable if s not in before]
        removed = [s for s in before if s not in set(usable)]
        session.series, session.skipped = usable, skipped
        if not added and not removed:
            return
        symbols = lambda keys: sorted({s.symbol for s in keys})  # noqa: E731
        log.info("universe of %s changed: %d series in, %d out", session.exchange_id, len(added),
                 len(removed), extra={"event": "universe_changed", "added": symbols(added),
                                      "removed": symbols(removed)})
        now_ms = int(session.clock() * 1000)
        for series in added:
            self._on_enter(series, now_ms - self.backfill_ms if self.backfill_ms else None)
        for series in removed:
            self._on_leave(series)
        session.report_plan()
