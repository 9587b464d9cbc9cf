"""What funding rates and open interest share: they exist for contracts only."""

from __future__ import annotations

from core.series import SeriesKey
from worker.exchange import ExchangeClient


def contract_reason(client: ExchangeClient, series: SeriesKey, method: str) -> str | None:
    """Why ``series`` (a funding or open-interest series) cannot be served, or None."""
    market = client.market(series.symbol)
    if market is None:
        return f"{client.exchange_id} does not list symbol {series.symbol}"
    if not (market.get("swap") or market.get("future")):
        kind = market.get("type") or "spot"
        return (f"{series.symbol} is a {kind} market on {client.exchange_id}; {series.dataset} "
                "exist for perpetual swaps and futures only (e.g. BTC/USDT:USDT)")
    if not client.offers(method):
        return f"{client.exchange_id} does not offer {series.dataset} history through ccxt ({method})"
    return None
