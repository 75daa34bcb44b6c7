"""Tiny inline-SVG charts for the run report (no JS, no CDN: the page must open offline).

Each function returns one ``<svg>`` string; labels are escaped. Charts are
deliberately plain: horizontal bars, a histogram, a line.
"""

from __future__ import annotations

from html import escape
from typing import Sequence

PALETTE = ("#2a6fdb", "#0a7a2f", "#c77700", "#7c4dff", "#00838f", "#b3261e", "#6d6d6d")


def _num(v: float) -> str:
    if isinstance(v, float) and not v.is_integer():
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return f"{int(v):,}"


def empty(title: str, why: str) -> str:
    return (f'<svg class="chart" width="520" height="60" role="img" aria-label="{escape(title)}">'
            f'<text x="8" y="20" font-weight="600">{escape(title)}</text>'
            f'<text x="8" y="44" fill="#777">{escape(why)}</text></svg>')


def hbars(title: str, items: Sequence[tuple[str, float]], *, fmt=_num, colors: Sequence[str] | None = None,
          max_value: float | None = None, width: int = 520, label_w: int = 190) -> str:
    """Horizontal bars, one per (label, value); labels right-aligned in ``label_w`` pixels."""
    if not items:
        return empty(title, "no data")
    row_h, top = 22, 28
    plot_w = width - label_w - 70
    top_value = max_value if max_value is not None else max((v for _, v in items), default=0) or 1
    height = top + row_h * len(items) + 8
    parts = [f'<svg class="chart" width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
             f'<text x="8" y="18" font-weight="600">{escape(title)}</text>']
    for i, (label, value) in enumerate(items):
        y = top + i * row_h
        w = max(0.0, plot_w * (value / top_value)) if top_value else 0.0
        color = (colors or PALETTE)[i % len(colors or PALETTE)] if colors else PALETTE[0]
        parts.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{escape(label)}</text>'
                     f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="{color}">'
                     f'<title>{escape(label)}: {escape(fmt(value))}</title></rect>'
                     f'<text x="{label_w + w + 4:.1f}" y="{y + 15}">{escape(fmt(value))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(title: str, values: Sequence[float], *, bins: int = 20, xlabel: str = "",
              color: str = PALETTE[0], width: int = 520, height: int = 200) -> str:
    if not values:
        return empty(title, "no data")
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / span * bins))] += 1
    left, bottom, top = 40, 36, 26
    plot_w, plot_h = width - left - 10, height - top - bottom
    peak = max(counts) or 1
    bar_w = plot_w / bins
    parts = [f'<svg class="chart" width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
             f'<text x="8" y="16" font-weight="600">{escape(title)}</text>',
             f'<text x="{left - 4}" y="{top + 10}" text-anchor="end" font-size="11">{peak}</text>',
             f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" font-size="11">0</text>']
    for i, c in enumerate(counts):
        h = plot_h * c / peak
        x0 = lo + span * i / bins
        x1 = lo + span * (i + 1) / bins
        parts.append(f'<rect x="{left + i * bar_w:.1f}" y="{top + plot_h - h:.1f}" width="{max(1.0, bar_w - 1):.1f}" '
                     f'height="{h:.1f}" fill="{color}"><title>{_num(x0)}–{_num(x1)}: {c}</title></rect>')
    axis_y = top + plot_h + 14
    parts.append(f'<text x="{left}" y="{axis_y}" font-size="11">{_num(lo)}</text>'
                 f'<text x="{left + plot_w}" y="{axis_y}" font-size="11" text-anchor="end">{_num(hi)}</text>'
                 f'<text x="{left + plot_w / 2:.0f}" y="{axis_y + 14}" font-size="11" text-anchor="middle">'
                 f'{escape(xlabel)} (n={len(values)})</text></svg>')
    return "".join(parts)


def line(title: str, points: Sequence[tuple[float, float]], *, xlabel: str = "", ylabel: str = "",
         color: str = PALETTE[1], width: int = 520, height: int = 200) -> str:
    if len(points) < 2:
        return empty(title, "too few points to draw a line")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_lo, x_hi, y_hi = min(xs), max(xs), max(ys) or 1
    left, bottom, top = 48, 36, 26
    plot_w, plot_h = width - left - 12, height - top - bottom

    def px(x: float, y: float) -> str:
        return f"{left + plot_w * (x - x_lo) / ((x_hi - x_lo) or 1):.1f},{top + plot_h * (1 - y / y_hi):.1f}"

    path = " ".join(px(x, y) for x, y in points)
    axis_y = top + plot_h + 14
    return (f'<svg class="chart" width="{width}" height="{height}" role="img" aria-label="{escape(title)}">'
            f'<text x="8" y="16" font-weight="600">{escape(title)}'
            f'<tspan font-weight="400" fill="#555">{" — " + escape(ylabel) if ylabel else ""}</tspan></text>'
            f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#999"/>'
            f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#999"/>'
            f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>'
            f'<text x="{left - 4}" y="{top + 10}" text-anchor="end" font-size="11">{_num(y_hi)}</text>'
            f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" font-size="11">0</text>'
            f'<text x="{left}" y="{axis_y}" font-size="11">{_num(x_lo)}</text>'
            f'<text x="{left + plot_w}" y="{axis_y}" font-size="11" text-anchor="end">{_num(x_hi)}</text>'
            f'<text x="{left + plot_w / 2:.0f}" y="{axis_y + 14}" font-size="11" text-anchor="middle">'
            f'{escape(xlabel)}</text></svg>')
