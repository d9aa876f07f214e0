"""Charts as inline SVG, drawn on the server: no JavaScript, no CDN (the machines are offline).

Each function takes plain numbers and returns safe SVG markup for a template;
every console page (and any card added to one) draws through these, so all
charts share one size, one font and one way of placing labels.

Layout rules, so that a chart reads at a glance in its column:

- the drawing is WIDTH x height user units and the page shows it at its
  column's width, never narrower than MIN_COLUMN px (base.html's grid), so
  FONT-unit text is at least 12 px on screen;
- label widths are estimated (CHAR_WIDTH em per character) and labels are
  thinned or shortened until none overlaps or leaves the drawing;
- the legend wraps onto as many rows as it needs;
- a time series with fewer than MIN_POINTS points says "not enough data yet".

Points are already aggregated by the selectors, so a chart never holds more
than a few hundred elements whatever the history.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from predictions.tiers import TIERS

WIDTH, HEIGHT = 600, 240
MIN_COLUMN = 600  # px: base.html's chart grid never makes a column narrower, so 1 unit >= 1 px
FONT, TITLE_FONT = 13, 14
CHAR_WIDTH = 0.62  # em per character: wider than the average glyph of sans-serif fonts, so estimates err wide
RIGHT, TOP, TICK_GAP = 12, 30, 16
MIN_POINTS = 3
MAX_BAR = 56  # a bar never grows wider than this, however few the categories
PALETTE = ("#2b6cb0", "#c05621", "#2f855a", "#9b2c2c", "#6b46c1", "#718096")
TIER_COLORS = dict(zip(TIERS, ("#68d391", "#f6e05e", "#f6ad55", "#e53e3e"), strict=True))  # low ... very high
TEXT, MUTED, GRID = "#2d3748", "#4a5568", "#edf2f7"


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


def text_width(label: str, size: int = FONT) -> float:
    return len(label) * size * CHAR_WIDTH


def fit(label: str, width: float, size: int = FONT) -> str:
    """``label`` shortened with an ellipsis to at most ``width`` units."""
    if text_width(label, size) <= width:
        return label
    keep = max(1, int(width / (size * CHAR_WIDTH)) - 1)
    return label[:keep] + "…"


def _text(x: float, y: float, label: str, *, anchor: str = "start", size: int = FONT, fill: str = MUTED,
          extra: str = "") -> str:  # fmt: skip
    return (
        f'<text class="chart-text" x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
        f'fill="{fill}"{extra}>{escape(label)}</text>'
    )


@dataclass
class Frame:
    """The plot area inside a WIDTH x height drawing, with room for y labels on the left and legend rows below."""

    left: float
    legend_rows: list[list[tuple[str, str, float]]]  # per row: (label, color, x)
    height: int = HEIGHT

    @property
    def right(self) -> float:
        return WIDTH - RIGHT

    @property
    def bottom(self) -> float:
        return self.height - 8 - len(self.legend_rows) * (FONT + 6) - TICK_GAP - 4

    def svg(self, body: list[str], title: str) -> SafeString:
        return _svg(body + self.legend(), title, height=self.height)

    def legend(self) -> list[str]:
        parts = []
        for row, items in enumerate(self.legend_rows):
            y = self.bottom + TICK_GAP + 4 + (row + 1) * (FONT + 6)
            for label, color, x in items:
                parts.append(f'<rect x="{x:.1f}" y="{y - FONT + 2:.1f}" width="11" height="11" fill="{color}"/>')
                parts.append(_text(x + 15, y, label, fill=TEXT))
        return parts


def _frame(y_labels: list[str], legend: list[tuple[str, str]], *, height: int = HEIGHT) -> Frame:
    left = 10 + max((text_width(label) for label in y_labels), default=0)
    rows: list[list[tuple[str, str, float]]] = [[]]
    x = left
    for label, color in legend:
        label = fit(label, WIDTH - RIGHT - left - 15)
        width = 15 + text_width(label) + 14
        if rows[-1] and x + width > WIDTH - RIGHT:
            rows.append([])
            x = left
        rows[-1].append((label, color, x))
        x += width
    return Frame(left, rows if legend else [], height + 20 * max(len(rows) - 1, 0))


def _svg(body: list[str], title: str, *, height: int = HEIGHT) -> SafeString:
    head = (
        f'<svg class="console-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
        + _text(4, 18, fit(title, WIDTH - 8, TITLE_FONT), size=TITLE_FONT, fill=TEXT, extra=' font-weight="bold"')
    )
    return mark_safe(head + "".join(body) + "</svg>")  # noqa: S308 - every label passed through escape()


def placeholder(title: str, message: str = "No data yet") -> SafeString:
    """A chart's frame with a message instead of a plot: empty, or too few points to show a trend."""
    text = _text(WIDTH / 2, HEIGHT / 2, fit(message, WIDTH - 24), anchor="middle", fill="#718096")
    return _svg([f'<g class="chart-placeholder">{text}</g>'], title)


def nice_range(low: float, high: float, *, ticks: int = 4) -> tuple[float, float, list[float]]:
    """``low``..``high`` widened to round numbers (steps of 1, 2, 2.5 or 5 x 10^n), and the ticks between."""
    if high <= low:
        low, high = low - 1, high + 1
    raw = (high - low) / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * 0.999)
    low, high = math.floor(low / step + 1e-9) * step, math.ceil(high / step - 1e-9) * step
    return low, high, [low + step * i for i in range(round((high - low) / step) + 1)]


def _y_labels(values: list[float], y_format: str) -> list[tuple[float, str]]:
    return [(v, format(v, y_format)) for v in values]


def _even_ticks(low: float, high: float) -> list[float]:
    return [low + (high - low) * i / 4 for i in range(5)]


def _axes(frame: Frame, y: Scale, y_labels: list[tuple[float, str]], x_labels: list[tuple[float, str]]) -> list[str]:
    parts = [
        f'<rect x="{frame.left}" y="{TOP}" width="{frame.right - frame.left}" height="{frame.bottom - TOP}" '
        'fill="none" stroke="#cbd5e0"/>'
    ]
    for value, label in y_labels:
        pos = y(value)
        parts.append(f'<line x1="{frame.left}" x2="{frame.right}" y1="{pos:.1f}" y2="{pos:.1f}" stroke="{GRID}"/>')
        parts.append(_text(frame.left - 5, pos + 4, label, anchor="end"))
    last = len(x_labels) - 1
    for i, (pos, label) in enumerate(x_labels):
        # The outermost labels hang inwards from their tick, so none is cut at the drawing's edge.
        anchor = "middle"
        if i == 0 and pos - text_width(label) / 2 < frame.left - 4:
            anchor = "start"
        elif i == last and pos + text_width(label) / 2 > WIDTH - 2:
            anchor = "end"
        parts.append(f'<g class="x-label">{_text(pos, frame.bottom + TICK_GAP, label, anchor=anchor)}</g>')
    return parts


def _time_ticks(x: Scale, fmt: Callable[[float], str], width: float) -> list[tuple[float, str]]:
    """As many evenly spaced ticks (2 to 5) as fit side by side without touching."""
    if x.high == x.low:
        return [(x(x.low), fmt(x.low))]
    widest = max(text_width(fmt(x.low)), text_width(fmt(x.high)))
    # Room for each label and a gap of half its width: the outer labels may hang inwards by half a label.
    count = max(2, min(5, int(width // (widest * 1.5 + 16)) + 1))
    values = [x.low + (x.high - x.low) * i / (count - 1) for i in range(count)]
    return [(x(v), fmt(v)) for v in values]


def time_format(start: float, end: float) -> Callable[[float], str]:
    """Dates as short as the span allows: times of day within two days, days within a year, else months."""
    span = end - start
    pattern = "%d %b %H:%M" if span <= 2 * 86400 else "%d %b" if span <= 300 * 86400 else "%b %Y"
    return lambda seconds: dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime(pattern)


def line_chart(
    series: list[Series],
    *,
    title: str,
    band: Sequence[tuple[float, float, float]] = (),
    y_range: tuple[float, float] | None = None,
    y_format: str = ".2f",
    threshold: float | None = None,
    threshold_label: str = "alert threshold",
    x_format: Callable[[float], str] | None = None,
) -> SafeString:
    """Lines over time (x in epoch seconds), an optional shaded band (x, low, high) and a threshold line."""
    xs = {p[0] for s in series for p in s.points if p[1] is not None}
    ys = [p[1] for s in series for p in s.points if p[1] is not None] + [v for b in band for v in b[1:]]
    if not xs:
        return placeholder(title)
    if len(xs) < MIN_POINTS:
        return placeholder(title, f"Not enough data yet: {len(xs)} of {MIN_POINTS} points")
    limits = ys + ([threshold] if threshold is not None else [])
    if y_range:
        low, high = y_range
        ticks = _even_ticks(low, high)
    else:
        low, high, ticks = nice_range(min(limits), max(limits))
    legend = [(s.label, s.color) for s in series]
    if threshold is not None:
        legend.append((f"{threshold_label} {format(threshold, y_format)}", "#e53e3e"))
    y_labels = _y_labels(ticks, y_format)
    frame = _frame([label for _, label in y_labels], legend)
    x = Scale(min(xs), max(xs), frame.left + 6, frame.right - 6)
    y = Scale(low, high, frame.bottom, TOP, clip=y_range is not None)
    x_format = x_format or time_format(x.low, x.high)
    parts = _axes(frame, y, y_labels, _time_ticks(x, x_format, frame.right - frame.left))
    if band:
        upper = " ".join(f"{x(bx):.1f},{y(hi):.1f}" for bx, _, hi in band)
        lower = " ".join(f"{x(bx):.1f},{y(lo):.1f}" for bx, lo, _ in reversed(band))
        parts.append(f'<polygon class="band" points="{upper} {lower}" fill="{series[0].color}" fill-opacity="0.18"/>')
    if threshold is not None:
        parts.append(
            f'<line x1="{frame.left}" x2="{frame.right}" y1="{y(threshold):.1f}" y2="{y(threshold):.1f}" '
            'stroke="#e53e3e" stroke-dasharray="5 4"/>'
        )
    for s in series:
        parts.extend(_polyline(s, x, y))
    return frame.svg(parts, title)


def _polyline(series: Series, x: Scale, y: Scale) -> list[str]:
    """One polyline per unbroken run of points, and a dot on each point."""
    parts: list[str] = []
    run: list[str] = []
    for px, py in [*series.points, (None, None)]:
        if px is None or py is None:
            if len(run) > 1:
                parts.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{series.color}" stroke-width="2"/>'
                )
            run = []
            continue
        run.append(f"{x(px):.1f},{y(py):.1f}")
        parts.append(f'<circle cx="{x(px):.1f}" cy="{y(py):.1f}" r="2.5" fill="{series.color}"/>')
    return parts


def _category_labels(categories: list[str], frame: Frame, slot: float) -> list[tuple[float, str]]:
    """Every ``step``-th category name, shortened to the room it has; the full name is in each bar's tooltip."""
    widest = max(text_width(c) for c in categories)
    step = 1
    while step < len(categories) and min(widest, text_width("M" * 8)) + 10 > slot * step:
        step += 1
    room = slot * step - 10
    return [(frame.left + slot * (i + 0.5), fit(c, room)) for i, c in enumerate(categories) if i % step == 0]


def bar_chart(
    categories: list[str],
    groups: list[tuple[str, list[float], str]],
    *,
    title: str,
    stacked: bool = False,
    y_format: str = ".0f",
    y_range: tuple[float, float] | None = None,
) -> SafeString:
    """Bars per category: side by side (reference vs current) or stacked (tier shares per week)."""
    if not categories or not groups:
        return placeholder(title)
    totals = [sum(g[1][i] for g in groups) for i in range(len(categories))] if stacked else []
    if y_range:
        low, high = y_range
        ticks = _even_ticks(low, high)
    else:
        low, high, ticks = nice_range(0, (max(totals) if stacked else max(v for g in groups for v in g[1])) or 1)
    y_labels = _y_labels(ticks, y_format)
    frame = _frame([label for _, label in y_labels], [(g[0], g[2]) for g in groups])
    y = Scale(low, high, frame.bottom, TOP)
    slot = (frame.right - frame.left) / len(categories)
    parts = _axes(frame, y, y_labels, _category_labels(categories, frame, slot))
    width = min(slot * 0.8 / (1 if stacked else len(groups)), MAX_BAR)
    span = width * (1 if stacked else len(groups))
    for i in range(len(categories)):
        base = 0.0
        for g, (label, values, color) in enumerate(groups):
            value = values[i]
            left = frame.left + slot * (i + 0.5) - span / 2 + (0 if stacked else g * width)
            top, bottom = y(base + value), y(base)
            tip = f"{escape(categories[i])} {escape(label)}: {format(value, y_format)}"
            parts.append(
                f'<rect x="{left:.1f}" y="{top:.1f}" width="{width:.1f}" height="{max(bottom - top, 0):.1f}" '
                f'fill="{color}"><title>{tip}</title></rect>'
            )
            if stacked:
                base += value
    return frame.svg(parts, title)


def tier_share_chart(categories: list[str], counts: list[dict[str, int]], *, title: str) -> SafeString:
    """Each category's (a week's, a facility's) patients by tier, as stacked percentages: one bar per category.

    ``counts[i]`` maps tier -> patients for ``categories[i]``; a category without any is left out.
    """
    rows = [(c, n) for c, n in zip(categories, counts, strict=True) if sum(n.values())]
    groups = [
        (tier.replace("_", " "), [100 * n.get(tier, 0) / sum(n.values()) for _, n in rows], TIER_COLORS[tier])
        for tier in TIERS
    ]
    return bar_chart([c for c, _ in rows], groups, title=title, stacked=True, y_format=".0f", y_range=(0, 100))


def calibration_chart(bins: list[dict], *, title: str) -> SafeString:
    """Observed rate against mean predicted score per bin, with the diagonal of perfect calibration."""
    if not bins:
        return placeholder(title)
    if len(bins) < MIN_POINTS:
        return placeholder(title, f"Not enough data yet: {len(bins)} of {MIN_POINTS} bins")
    _, top, ticks = nice_range(0, max(max(b["mean_score"], b["observed_rate"]) for b in bins) or 1.0)
    y_labels = _y_labels(ticks, ".2f")
    frame = _frame(
        [label for _, label in y_labels],
        [("observed rate vs mean score", PALETTE[1]), ("perfect calibration", "#a0aec0")],
    )
    x = Scale(0, top, frame.left + 6, frame.right - 6)
    y = Scale(0, top, frame.bottom, TOP)
    x_labels = [(x(v), label) for v, label in y_labels]
    parts = _axes(frame, y, y_labels, x_labels)
    parts.append(
        f'<line x1="{x(0):.1f}" y1="{y(0):.1f}" x2="{x(top):.1f}" y2="{y(top):.1f}" '
        'stroke="#a0aec0" stroke-dasharray="5 4"/>'
    )
    points = [(b["mean_score"], b["observed_rate"]) for b in sorted(bins, key=lambda b: b["mean_score"])]
    parts.extend(_polyline(Series("observed", points, PALETTE[1]), x, y))
    return frame.svg(parts, title)
