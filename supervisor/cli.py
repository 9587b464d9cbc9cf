"""``python -m supervisor``: arguments, config, logging, then the arbiter.

Exit codes: 0 success; 1 HISTORY finished with failed series (AUDIT: repairable gaps left);
2 bad usage or bad config;
3 the supervisor itself could not start (store not initialisable, health port taken).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import queue
import sys
from datetime import UTC, datetime
from typing import Any, Mapping, Sequence

from core import exit_codes
from core.config import AppConfig, ConfigError, load_config
from core.entrypoints import PREPARE_STORE, WORKER_PRELOAD, run_entrypoint
from core.exports import EXPORT_FORMATS, ExportRequest
from core.logsetup import configure_supervisor_logging
from core.shards import Shard, ShardError
from core.timefmt import epoch_ms
from supervisor.arbiter import Arbiter
from supervisor.channels import WorkerChannel
from supervisor.coverage_page import write_coverage_report
from supervisor.export import run_export
from supervisor.health import HealthServer
from supervisor.logs import LOG_FORMATS, LokiConfig, start_log_listener
from supervisor.metrics import CONTENT_TYPE, CollectorMetrics
from supervisor.paths import unusable_paths
from supervisor.probe import probe_params, run_probe
from supervisor.progress import HistoryProgressBar

log = logging.getLogger(__name__)

PREFLIGHT_TIMEOUT_S = 180
_SECRET_KEYS = ("apikey", "secret", "password", "privatekey", "token", "uid", "walletaddress")


class UsageError(Exception):
    pass


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m supervisor",
                                     description="Collect OHLCV candles from exchanges into BigQuery or SQLite.")
    parser.add_argument("--mode", choices=("live", "history", "audit", "export", "plan", "probe"),
                        default="live",
                        help="live: poll forever (default); history: backfill --start..--end and exit; "
                             "audit: classify the store's gaps in --start..--end and exit; "
                             "export: write the stored rows of --start..--end as files under --out; "
                             "plan: print the series this shard collects (JSON lines) and exit; "
                             "probe: show what one --exchange serves (page size, since, oldest bar) and exit")
    parser.add_argument("--repair", action="store_true",
                        help="audit: also fill the gaps the exchange can still serve")
    parser.add_argument("--start", help="HISTORY start, ISO-8601 (naive = UTC), inclusive")
    parser.add_argument("--end", help="HISTORY end, ISO-8601 (naive = UTC), exclusive; default now")
    parser.add_argument("--config", help="config file (default $CONFIG_PATH, then ./config.yaml)")
    parser.add_argument("--exchange", nargs="+", action="extend", metavar="ID",
                        help="run only these configured exchanges (shard one config over containers)")
    parser.add_argument("--shard", metavar="I/N",
                        help="run shard I of N (0-based; default $SHARD): only the exchanges or "
                             "series (settings.shard_by) a stable hash gives to I")
    parser.add_argument("--validate-config", action="store_true",
                        help="check the config and exit (0 valid, 2 invalid)")
    parser.add_argument("--report", metavar="FILE.html",
                        help="audit: also write the coverage grid as a self-contained HTML page")
    parser.add_argument("--out", metavar="DIR", help="export: the directory the files go under")
    parser.add_argument("--format", choices=EXPORT_FORMATS, default=None,
                        help="export: file format (default parquet)")
    parser.add_argument("--symbol", action="append",
                        help="probe: a market to ask for, repeatable (default: the exchange's configured series, "
                             "else BTC/USDT or its first listed market)")
    parser.add_argument("--timeframe", help="probe: the timeframe to ask for (default: as configured, else 1m)")
    return parser.parse_args(argv)


def parse_instant(text: str, flag: str) -> int:
    """Epoch ms from ISO-8601; a naive datetime is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{flag}: {text!r} is not an ISO-8601 datetime, e.g. 2023-01-01T00:00:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return epoch_ms(moment)


def history_range(args: argparse.Namespace, now_ms: int) -> tuple[int | None, int | None]:
    if args.repair and args.mode != "audit":
        raise UsageError("--repair only applies to --mode audit")
    if args.report and args.mode != "audit":
        raise UsageError("--report only applies to --mode audit")
    if (args.out or args.format) and args.mode != "export":
        raise UsageError("--out and --format only apply to --mode export")
    if args.mode == "export" and not args.out:
        raise UsageError("--mode export needs --out DIR")
    if (args.symbol or args.timeframe) and args.mode != "probe":
        raise UsageError("--symbol and --timeframe only apply to --mode probe")
    if args.mode in ("live", "plan", "probe"):
        if args.start or args.end:
            raise UsageError("--start and --end only apply to --mode history and --mode audit")
        return None, None
    if not args.start:
        raise UsageError(f"--mode {args.mode} needs --start")
    start = parse_instant(args.start, "--start")
    end = parse_instant(args.end, "--end") if args.end else now_ms
    if start >= end:
        raise UsageError(f"--start must be before --end ({args.start} >= {args.end or 'now'})")
    return start, end


def parse_shard(flag: str | None, environ: Mapping[str, str]) -> Shard | None:
    """``--shard`` wins over ``SHARD``; neither means one process owns everything."""
    text, source = (flag, "--shard") if flag is not None else (environ.get("SHARD") or None, "SHARD")
    if text is None:
        return None
    try:
        return Shard.parse(text)
    except ShardError as exc:
        raise UsageError(f"{source}: {exc}") from None


def select_exchanges(config: AppConfig, wanted: list[str] | None) -> list[str]:
    if not wanted:
        return list(config.exchanges)
    unknown = [e for e in wanted if e not in config.exchanges]
    if unknown:
        raise UsageError(f"--exchange {', '.join(unknown)}: not in the config "
                         f"(configured: {', '.join(config.exchanges)})")
    return list(dict.fromkeys(wanted))


def collect_secrets(config: AppConfig, environ: Mapping[str, str]) -> list[str]:
    """Values that must never appear in a log line: Loki credentials, exchange API keys."""
    secrets = [environ.get("LOKI_PASSWORD", ""), environ.get("LOKI_USERNAME", "")]

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, str) and any(s in key.lower() for s in _SECRET_KEYS):
            secrets.append(value)
    for exchange in config.exchanges.values():
        walk(exchange.ccxt)
    return [s for s in secrets if s]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    config_path = args.config or os.environ.get("CONFIG_PATH") or "config.yaml"
    try:
        config = load_config(config_path)
        exchanges = (list(dict.fromkeys(args.exchange or [])) if args.mode in ("export", "probe")
                     else select_exchanges(config, args.exchange))
        start_ms, end_ms = history_range(args, int(datetime.now(UTC).timestamp() * 1000))
        shard = parse_shard(args.shard, os.environ)
        log_format = os.environ.get("LOG_FORMAT", "").strip().lower() or None
        if log_format is not None and log_format not in LOG_FORMATS:
            raise UsageError(f"LOG_FORMAT={log_format!r}: use one of {', '.join(LOG_FORMATS)}")
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return exit_codes.USAGE
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_codes.USAGE
    if args.validate_config:
        print(f"{config_path}: valid ({len(config.exchanges)} exchanges, {config.series_count()} series)")
        return exit_codes.OK
    if args.mode == "probe":
        if len(exchanges) != 1:
            print("error: --mode probe needs exactly one --exchange ID", file=sys.stderr)
            return exit_codes.USAGE
        return run_probe(probe_params(config, exchanges[0], args.symbol, args.timeframe))
    if args.mode == "export":
        assert start_ms is not None and end_ms is not None
        request = ExportRequest(config.storage, start_ms, end_ms, args.out, args.format or "parquet",
                                tuple(exchanges), config.settings.log_level)
        return run_service(config, args.mode, exchanges, start_ms, end_ms, export=request, log_format=log_format)
    return run_service(config, args.mode, exchanges, start_ms, end_ms, repair=args.repair, report=args.report,
                       log_format=log_format, config_path=config_path, selected=args.exchange, shard=shard)


def worker_context() -> Any:
    """Workers come from a forkserver that has ccxt imported already.

    Forking the supervisor itself would copy its threads' locks (log listener, health
    server) in whatever state they are; the forkserver is a clean single-threaded process,
    and its children share the preloaded modules' memory instead of importing ccxt each.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([WORKER_PRELOAD])
        return ctx
    return multiprocessing.get_context("spawn")


def run_service(config: AppConfig, mode: str, exchanges: list[str], start_ms: int | None,
                end_ms: int | None, *, repair: bool = False, report: str | None = None,
                export: ExportRequest | None = None, log_format: str | None = None,
                config_path: str | None = None, selected: list[str] | None = None,
                shard: Shard | None = None) -> int:
    settings = config.settings
    plan = mode == "plan"
    log_queue: queue.Queue = queue.Queue()
    listener = start_log_listener(log_queue, service_name=settings.service_name,
                                  environment=settings.environment,
                                  loki=LokiConfig.from_env(os.environ),
                                  secrets=collect_secrets(config, os.environ), level=settings.log_level,
                                  log_format=log_format, stream=sys.stderr if plan else None)
    configure_supervisor_logging(log_queue, settings.log_level)
    health = None
    progress = HistoryProgressBar.on_terminal(sys.stdout, listener.stdout_handler) if mode == "history" else None
    try:
        log.info("starting %s mode for %s", mode, ", ".join(exchanges) or "every exchange in the store",
                 extra={"event": "config_loaded", "mode": mode, "exchanges": exchanges,
                        "series": config.series_count(), "backend": config.storage.backend,
                        "shard": str(shard or ""), "shard_by": settings.shard_by})
        if not plan and not paths_usable(config):
            return exit_codes.BOOT_FAILURE
        ctx = worker_context()
        if export is not None:
            code = run_export(ctx, export, log_queue)
            log.info("supervisor exiting with code %d", code, extra={"event": "supervisor_exit", "exit_code": code})
            return code
        if not plan and not preflight(ctx, config, log_queue):
            return exit_codes.BOOT_FAILURE
        arbiter = Arbiter(config, mode=mode, exchanges=exchanges, ctx=ctx, log_queue=log_queue,
                          start_ms=start_ms, end_ms=end_ms, repair=repair, selected=selected, shard=shard,
                          reload_config=(lambda: load_config(config_path)) if config_path else None,
                          on_tick=progress.tick if progress is not None else None)
        if settings.health_port and not plan:
            try:
                health = HealthServer(settings.health_port, arbiter.health,
                                      metrics_for(arbiter, listener.stats).render,
                                      metrics_content_type=CONTENT_TYPE).start()
            except OSError as exc:
                log.error("cannot serve health on port %d: %s", settings.health_port, exc,
                          extra={"event": "health_port_error"})
                return exit_codes.BOOT_FAILURE
        code = arbiter.run()
        if report and start_ms is not None and end_ms is not None:
            if not write_coverage_report(report, arbiter.workers.values(), start_ms, end_ms, repair=repair):
                code = code or exit_codes.HISTORY_INCOMPLETE
        log.info("supervisor exiting with code %d", code, extra={"event": "supervisor_exit", "exit_code": code})
        return code
    finally:
        if health is not None:
            health.stop()
        if progress is not None:
            progress.close()
        listener.stop()


def metrics_for(arbiter: Arbiter, loki_stats: Any) -> CollectorMetrics:
    settings = arbiter.config.settings
    live = arbiter.mode == "live"
    return CollectorMetrics(lambda: arbiter.workers.values(), loki_stats=loki_stats,
                            stale_after_s=settings.stale_after_intervals * settings.update_interval_seconds
                            if live else None)


def paths_usable(config: AppConfig) -> bool:
    """Every path the service writes is writable; if not, one line per path says why."""
    problems = unusable_paths(config)
    for key, path, reason in problems:
        log.error("%s %s: %s", key, path, reason,
                  extra={"event": "boot_failed", "key": key, "path": path, "reason": reason})
        print(f"error: {key} {path}: {reason}", file=sys.stderr)
    return not problems


def preflight(ctx: Any, config: AppConfig, log_queue: queue.Queue) -> bool:
    """Create the table (and view) once, in a child process, before workers start."""
    channel = WorkerChannel(ctx, log_queue, queue.Queue())
    process = ctx.Process(target=run_entrypoint, name="preflight",
                          args=(PREPARE_STORE, config.storage, channel.queue, config.settings.log_level))
    process.start()
    process.join(PREFLIGHT_TIMEOUT_S)
    if process.is_alive():
        process.kill()
        process.join()
    channel.close()
    if process.exitcode != exit_codes.OK:
        log.error("the store could not be initialised (exit code %s); not starting workers",
                  process.exitcode, extra={"event": "boot_failed", "backend": config.storage.backend})
        return False
    return True
