"""The collector's own exception hierarchy.

ccxt's exceptions stop at the exchange adapter and the client libraries' at the sinks, so the
rest of the worker decides on three questions only: try again later, skip this series, or
stop this exchange.
"""


class CollectorError(Exception):
    """Base class for errors the worker knows how to handle."""


class TransientError(CollectorError):
    """Worth retrying later: network trouble, timeouts, 5xx, throttling."""


class ExchangeUnavailable(TransientError):
    """The exchange could not be reached or answered with a server-side failure."""


class RateLimited(ExchangeUnavailable):
    """The exchange throttled us (HTTP 429, DDoS protection)."""


class ExchangeRejected(CollectorError):
    """The exchange refused the request itself; retrying the same request will not help."""


class UnsupportedSeries(ExchangeRejected):
    """The exchange does not list this symbol or timeframe."""


class ExchangeSetupError(CollectorError):
    """The exchange cannot be used with this config (bad ccxt settings, no usable series)."""


class SinkUnavailable(TransientError):
    """The store failed in a way that may pass (5xx, timeout, lock contention, quota)."""


class SinkRejected(CollectorError):
    """The store refused the data or the schema; retrying the same write will not help."""


class DiskFull(SinkUnavailable):
    """The store's disk is full (ENOSPC, SQLITE_FULL): it clears when space is freed."""
