"""Charts as inline SVG, drawn on the server: no JavaScript, no CDN (the machines are offline).

Each function takes plain numbers and returns safe SVG markup for a template.
Points are already aggregated by the selectors, so a chart never holds more
than a few hundred elements whatever the history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from predictions.tiers import TIERS

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 26, 34
PALETTE = ("#2b6cb0", "#c05621", "#2f855a", "#9b2c2c", "#6b46c1", "#718096")
TIER_COLORS = dict(zip(TIERS, ("#68d391", "#f6e05e", "#f6ad55", "#e53e3e"), strict=True))  # low ... very high


@dataclass
class Series:
    label: str
    points: Sequence[tuple[float, float | None]]  # (x, y); y None leaves a gap
    color: str = PALETTE[0]


@dataclass
class Scale:
    low: float
    high: float
    start: float
    end: float
    clip: bool = False  # a fixed range (0-100 %) pins outliers to its edge instead of leaving the plot

    def __call__(self, value: float) -> float:
        if self.clip:
            value = min(max(value, self.low), self.high)
        span = (self.high - self.low) or 1.0
        return self.start + (value - self.low) / span * (self.end - self.start)


def timestamp(value: dt.datetime | dt.date) -> float:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp()


def _svg(body: list[str], title: str, *, width: int = WIDTH, height: int = HEIGHT) -> SafeString:
    head = (
        f'<svg class="console-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f'<text x="{LEFT}" y="15" font-size="12" font-weight="bold" fill="#2d3748">{escape(title)}</text>'
    )
    return mark_safe(head + "".join(body) + "</svg>")  # noqa: S308 - every label passed through escape()


def _empty(title: str) -> SafeString:
    text = f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" fill="#718096">No data yet</text>'
    return _svg([text], title)


def _axes(y: Scale, x_labels: list[tuple[float, str]], y_format: str) -> list[str]:
    parts = [
        f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{HEIGHT - TOP - BOTTOM}" '
        'fill="none" stroke="#cbd5e0"/>'
    ]
    for i in range(5):
        value = y.low + (y.high - y.low) * i / 4
        pos = y(value)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{pos:.1f}" y2="{pos:.1f}" stroke="#edf2f7"/>')
        parts.append(
            f'<text x="{LEFT - 4}" y="{pos + 4:.1f}" font-size="10" text-anchor="end" fill="#4a5568">'
            f"{format(value, y_format)}</text>"
        )
    for pos, label in x_labels:
        parts.append(
            f'<text x="{pos:.1f}" y="{HEIGHT - BOTTOM + 14}" font-size="10" text-anchor="middle" '
            f'fill="#4a5568">{escape(label)}</text>'
        )
    return parts


def _legend(items: list[tuple[str, str]]) -> list[str]:
    parts, x = [], LEFT
    for label, color in items:
        parts.append(f'<rect x="{x}" y="{HEIGHT - 12}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{x + 14}" y="{HEIGHT - 3}" font-size="10" fill="#2d3748">{escape(label)}</text>')
        x += 24 + 6 * len(label)
    return parts


def _x_ticks(x: Scale, count: int, fmt) -> list[tuple[float, str]]:
    if x.high == x.low:
        return [(x(x.low), fmt(x.low))]
    return [
        (x(x.low + (x.high - x.low) * i / (count - 1)), fmt(x.low + (x.high - x.low) * i / (count - 1)))
        for i in range(count)
    ]


def _date_label(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%d %b %H:%M")


def line_chart(
    series: list[Series],
    *,
    title: str,
    band: Sequence[tuple[float, float, float]] = (),
    y_range: tuple[float, float] | None = None,
    y_format: str = ".2f",
    threshold: float | None = None,
    x_format=_date_label,
) -> SafeString:
    """Lines over time (x in epoch seconds), an optional shaded band (x, low, high) and a threshold line."""
    xs = [p[0] for s in series for p in s.points] + [b[0] for b in band]
    ys = [p[1] for s in series for p in s.points if p[1] is not None] + [v for b in band for v in b[1:]]
    if not xs or not ys:
        return _empty(title)
    low, high = y_range or (
        min(ys + ([threshold] if threshold is not None else [])),
        max(ys + ([threshold] if threshold is not None else [])),
    )
    if high == low:
        low, high = low - 1, high + 1
    x = Scale(min(xs), max(xs), LEFT + 4, WIDTH - RIGHT - 4)
    y = Scale(low, high, HEIGHT - BOTTOM, TOP, clip=y_range is not None)
    parts = _axes(y, _x_ticks(x, 5, x_format), y_format)
    if band:
        upper = " ".join(f"{x(bx):.1f},{y(hi):.1f}" for bx, _, hi in band)
        lower = " ".join(f"{x(bx):.1f},{y(lo):.1f}" for bx, lo, _ in reversed(band))
        parts.append(f'<polygon class="band" points="{upper} {lower}" fill="{series[0].color}" fill-opacity="0.18"/>')
    if threshold is not None:
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(threshold):.1f}" y2="{y(threshold):.1f}" '
            'stroke="#e53e3e" stroke-dasharray="4 3"/>'
        )
    for s in series:
        parts.extend(_polyline(s, x, y))
    return _svg(parts + _legend([(s.label, s.color) for s in series]), title)


def _polyline(series: Series, x: Scale, y: Scale) -> list[str]:
    """One polyline per unbroken run of points, and a dot on each point."""
    parts: list[str] = []
    run: list[str] = []
    for px, py in [*series.points, (None, None)]:
        if px is None or py is None:
            if len(run) > 1:
                parts.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{series.color}" stroke-width="1.8"/>'
                )
            run = []
            continue
        run.append(f"{x(px):.1f},{y(py):.1f}")
        parts.append(f'<circle cx="{x(px):.1f}" cy="{y(py):.1f}" r="2" fill="{series.color}"/>')
    return parts


def bar_chart(
    categories: list[str],
    groups: list[tuple[str, list[float], str]],
    *,
    title: str,
    stacked: bool = False,
    y_format: str = ".0f",
) -> SafeString:
    """Bars per category: side by side (reference vs current) or stacked (tiers per week)."""
    if not categories or not groups:
        return _empty(title)
    totals = [sum(g[1][i] for g in groups) for i in range(len(categories))] if stacked else []
    high = max(totals) if stacked else max(v for g in groups for v in g[1])
    y = Scale(0, high or 1, HEIGHT - BOTTOM, TOP)
    slot = (WIDTH - LEFT - RIGHT) / len(categories)
    step = max(1, len(categories) // 8)
    labels = [(LEFT + slot * (i + 0.5), c[:14]) for i, c in enumerate(categories) if i % step == 0]
    parts = _axes(y, labels, y_format)
    width = slot * 0.8 / (1 if stacked else len(groups))
    for i in range(len(categories)):
        base = 0.0
        for g, (label, values, color) in enumerate(groups):
            value = values[i]
            left = LEFT + slot * i + slot * 0.1 + (0 if stacked else g * width)
            top, bottom = y(base + value), y(base)
            tip = f"{escape(categories[i])} {escape(label)}: {format(value, y_format)}"
            parts.append(
                f'<rect x="{left:.1f}" y="{top:.1f}" width="{width:.1f}" height="{max(bottom - top, 0):.1f}" '
                f'fill="{color}"><title>{tip}</title></rect>'
            )
            if stacked:
                base += value
    return _svg(parts + _legend([(g[0], g[2]) for g in groups]), title)


def calibration_chart(bins: list[dict], *, title: str) -> SafeString:
    """Observed rate against mean predicted score per bin, with the diagonal of perfect calibration."""
    if not bins:
        return _empty(title)
    top = max(max(b["mean_score"], b["observed_rate"]) for b in bins) * 1.1 or 1.0
    x = Scale(0, top, LEFT + 4, WIDTH - RIGHT - 4)
    y = Scale(0, top, HEIGHT - BOTTOM, TOP)
    parts = _axes(y, _x_ticks(x, 5, lambda v: f"{v:.2f}"), ".2f")
    parts.append(
        f'<line x1="{x(0):.1f}" y1="{y(0):.1f}" x2="{x(top):.1f}" y2="{y(top):.1f}" '
        'stroke="#a0aec0" stroke-dasharray="4 3"/>'
    )
    points = [(b["mean_score"], b["observed_rate"]) for b in sorted(bins, key=lambda b: b["mean_score"])]
    parts.extend(_polyline(Series("observed", points, PALETTE[1]), x, y))
    return _svg(parts + _legend([("observed rate vs mean score", PALETTE[1]), ("perfect", "#a0aec0")]), title)
