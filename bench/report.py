"""Figures as the bench prints them: each against its ideal, the baseline and its target."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Figure:
    name: str
    measured: str
    ideal: str = "-"
    baseline: str = "-"
    target: str = "-"
    ok: bool | None = None          # None: informational, no target
    throttled: tuple[int, int] | None = None  # (429s, 418s) of the scenario

    @property
    def result(self) -> str:
        return "-" if self.ok is None else ("pass" if self.ok else "**miss**")


def markdown_table(figures: list[Figure]) -> str:
    head = ["Figure", "Measured", "Ideal", "Hand-written baseline", "Target", "Result", "429 / 418"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f in figures:
        throttled = "-" if f.throttled is None else f"{f.throttled[0]} / {f.throttled[1]}"
        cells = [f.name, f.measured, f.ideal, f.baseline, f.target, f.result, throttled]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 76 - len(title)), flush=True)


def line(text: str = "") -> None:
    print(f"  {text}", flush=True)


def mb(n: float) -> str:
    return f"{n / 2**20:.1f} MB"


def rate(n: float) -> str:
    return f"{n:,.0f}"
