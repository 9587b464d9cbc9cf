"""What a SIGHUP changes: the new config compared with the running one.

The supervisor reads some settings once, at boot: the health server's port, the log
listener's labels and level, the store (its tables were prepared before any worker started)
and the state directory (spools and checkpoints already live there). A reload cannot apply
those without a restart of the whole service, so they keep their running values and the log
names them. Every other setting reaches the workers through their spec: a change there
restarts every worker gracefully. A change under ``exchanges.<id>`` restarts that worker
only; exchanges that appear start, exchanges that disappear stop, the rest keep running.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from core.config import AppConfig

# Settings read once by the supervisor itself; changing them needs a restart.
# shard_by decides which process owns what: every shard must change it together, by a restart.
RESTART_ONLY_SETTINGS = ("health_port", "service_name", "environment", "log_level", "state_dir", "shard_by")


@dataclass(frozen=True)
class ReloadPlan:
    config: AppConfig                      # what runs from now on (restart-only keys kept)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)   # restart these workers with new specs
    unchanged: list[str] = field(default_factory=list)
    needs_restart: list[str] = field(default_factory=list)  # key paths kept at running values
    settings_changed: list[str] = field(default_factory=list)  # key paths that apply to all

    @property
    def noop(self) -> bool:
        return not (self.added or self.removed or self.changed)


def plan_reload(running: AppConfig, new: AppConfig, running_exchanges: list[str],
                selected: list[str] | None, owns: Callable[[list[str]], list[str]] = list) -> ReloadPlan:
    """Compare ``new`` with ``running``.

    ``running_exchanges`` are the exchanges with a worker now; ``selected`` is the
    ``--exchange`` restriction of the command line (None: every configured exchange);
    ``owns`` keeps the exchanges this shard runs (split by exchange).
    """
    needs_restart = [f"settings.{key}" for key in RESTART_ONLY_SETTINGS
                     if getattr(new.settings, key) != getattr(running.settings, key)]
    needs_restart += _diff_paths("storage", running.storage.model_dump(), new.storage.model_dump())
    settings = new.settings.model_copy(
        update={key: getattr(running.settings, key) for key in RESTART_ONLY_SETTINGS})
    effective = new.model_copy(update={"settings": settings, "storage": running.storage})
    settings_changed = _diff_paths("settings", running.settings.model_dump(), settings.model_dump())

    wanted = owns([e for e in effective.exchanges if selected is None or e in selected])
    added = [e for e in wanted if e not in running_exchanges]
    removed = [e for e in running_exchanges if e not in wanted]
    kept = [e for e in running_exchanges if e in wanted]
    changed = [e for e in kept if settings_changed or effective.exchanges[e] != running.exchanges[e]]
    unchanged = [e for e in kept if e not in changed]
    return ReloadPlan(effective, added, removed, changed, unchanged, needs_restart, settings_changed)


def _diff_paths(prefix: str, old: object, new: object) -> list[str]:
    """Key paths under ``prefix`` whose values differ between two plain dicts."""
    if isinstance(old, dict) and isinstance(new, dict):
        paths: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            paths += _diff_paths(f"{prefix}.{key}", old.get(key), new.get(key))
        return paths
    return [] if old == new else [prefix]
