"""When to start a crashed worker again.

Modelled on Kubernetes' CrashLoopBackOff: the first restart comes after 1 s, each further
crash doubles the wait up to 5 minutes, and a worker that then runs healthily for 10 minutes
has its slate wiped. A worker crashing at boot thus costs a few restarts an hour, not a
restart storm against the exchange.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RestartBackoff:
    initial_s: float = 1.0
    factor: float = 2.0
    cap_s: float = 300.0
    healthy_reset_s: float = 600.0
    consecutive_crashes: int = 0

    def after_crash(self, ran_for_s: float) -> float:
        """Delay before the next start, given how long the crashed run lasted."""
        if ran_for_s >= self.healthy_reset_s:
            self.consecutive_crashes = 0
        delay = min(self.cap_s, self.initial_s * self.factor ** self.consecutive_crashes)
        self.consecutive_crashes += 1
        return delay
