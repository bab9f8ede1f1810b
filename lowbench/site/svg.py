"""Hand-made inline SVG line charts for histories (one <path> per chart, no matplotlib).

Coordinates are integers in a viewBox scaled x10 (0.1 px resolution), so the text is short and
deterministic. A series longer than twice the plot width is reduced to the min and max of each
pixel column, which keeps every spike visible. NaN values are gaps in the line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from markupsafe import Markup, escape

#: Scale of the viewBox relative to CSS pixels.
_S = 10
#: Colours of change marks by kind.
MARK_COLOURS = {"regression": "#c62828", "broke": "#c62828", "improvement": "#2e7d32",
                "fixed": "#2e7d32"}


def _points(values: np.ndarray, x0: float, y0: float, w: float, h: float,
            min_span: float = 0.0) -> tuple[list[np.ndarray], float, float, np.ndarray, np.ndarray]:
    """Segments of integer viewBox points (each an (m, 2) array), the value range, and the x/y
    viewBox coordinates of every commit (y NaN where no value)."""
    n = values.size
    finite = np.isfinite(values)
    idx = np.flatnonzero(finite)
    if idx.size == 0:
        return [], float("nan"), float("nan"), np.zeros(0), np.zeros(0)
    v = values[idx]
    lo, hi = float(v.min()), float(v.max())
    if hi - lo < min_span:
        mid = (hi + lo) / 2
        lo, hi = mid - min_span / 2, mid + min_span / 2
    span = hi - lo
    xs_all = x0 + (np.arange(n) * (w / (n - 1)) if n > 1 else np.full(n, w / 2))
    ys_all = (y0 + h / 2 if span == 0 else y0 + h - (values - lo) / span * h)
    ys_all = np.broadcast_to(ys_all, (n,)).astype(float)
    x, y = xs_all[idx], ys_all[idx]
    gap_after = np.diff(idx) > 1  # a NaN between consecutive finite points
    if idx.size > 2 * w:
        col = x.astype(np.int64)
        starts = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])
        ymin = np.minimum.reduceat(y, starts)
        ymax = np.maximum.reduceat(y, starts)
        ends = np.r_[starts[1:], idx.size] - 1
        gap_after = gap_after[ends[:-1]]
        x = np.repeat(col[starts].astype(float), 2)
        y = np.column_stack([ymin, ymax]).ravel()
        gap_after = np.column_stack([np.zeros(gap_after.size + 1, bool),
                                     np.r_[gap_after, False]]).ravel()[:-1]
    pts = np.rint(np.column_stack([x, y]) * _S).astype(np.int64)
    cuts = np.flatnonzero(gap_after) + 1
    return np.split(pts, cuts), lo, hi, xs_all, ys_all


def _path(segments: Sequence[np.ndarray]) -> str:
    parts = []
    for seg in segments:
        flat = seg.ravel().tolist()
        if len(seg) == 1:  # a lone point: a zero-length line with round caps shows a dot
            parts.append(f"M{flat[0]} {flat[1]}h0")
        else:
            parts.append(f"M{flat[0]} {flat[1]}L" + " ".join(map(str, flat[2:])))
    return "".join(parts)


def line_chart(values: np.ndarray, *, width: int = 160, height: int = 28,
               marks: Sequence[tuple[int, str, str]] = (), axes: bool = False,
               x_labels: tuple[str, str] | None = None,
               y_format: Callable[[float], str] | None = None, title: str = "",
               min_span: float = 0.0) -> Markup:
    """An inline SVG of ``values`` (one per commit, NaN = not measured).

    ``marks``: (commit index, kind, hover text) drawn as dots coloured by kind. ``axes`` adds a
    frame, ``x_labels`` = (first, last commit) under it and ``y_format(value)`` labels the top
    and bottom of the y range.
    ``min_span``: smallest value range of the y axis (in the values' unit), centred on the
    data. Sizes in CSS px.
    """
    pad_l, pad_r, pad_t, pad_b = (64, 8, 8, 18) if axes else (2, 2, 3, 3)
    w, h = width - pad_l - pad_r, height - pad_t - pad_b
    segments, lo, hi, xs, ys = _points(values, pad_l, pad_t, w, h, min_span)
    out = [f'<svg class="chart" width="{width}" height="{height}" '
           f'viewBox="0 0 {width * _S} {height * _S}" role="img" '
           f'xmlns="http://www.w3.org/2000/svg">']
    if title:
        out.append(f"<title>{escape(title)}</title>")
    if axes:
        out.append(f'<rect x="{pad_l * _S}" y="{pad_t * _S}" width="{w * _S}" height="{h * _S}" '
                   f'fill="none" stroke="#bbb" stroke-width="{_S}"/>')
        if x_labels and y_format and np.isfinite(lo):
            top, bottom = escape(y_format(hi)), escape(y_format(lo))
            first, last = (escape(t) for t in x_labels)
            fs = 11 * _S
            out.append(
                f'<g font-size="{fs}" fill="#555" font-family="sans-serif">'
                f'<text x="{(pad_l - 4) * _S}" y="{(pad_t + 10) * _S}" text-anchor="end">{top}'
                f'</text><text x="{(pad_l - 4) * _S}" y="{(pad_t + h) * _S}" '
                f'text-anchor="end">{bottom}</text>'
                f'<text x="{pad_l * _S}" y="{(height - 4) * _S}">{first}</text>'
                f'<text x="{(pad_l + w) * _S}" y="{(height - 4) * _S}" text-anchor="end">{last}'
                f'</text></g>')
    if segments:
        out.append(f'<path d="{_path(segments)}" fill="none" stroke="#1565c0" '
                   f'stroke-width="{int(1.5 * _S)}" stroke-linejoin="round" '
                   f'stroke-linecap="round"/>')
    r = (3 if axes else 2.5) * _S
    for i, kind, text in marks:
        if 0 <= i < xs.size and np.isfinite(ys[i]):
            out.append(f'<circle cx="{round(xs[i] * _S)}" cy="{round(ys[i] * _S)}" r="{r:g}" '
                       f'fill="{MARK_COLOURS.get(kind, "#f9a825")}"><title>{escape(text)}</title>'
                       f'</circle>')
    out.append("</svg>")
    return Markup("".join(out))


def scatter_chart(points: Sequence[tuple[float, float, str]], *, x_label: str, y_label: str,
                  width: int = 420, height: int = 300) -> Markup:
    """An inline SVG scatter of ``(x, y, hover text)`` points with the axes' ranges labelled
    (e.g. PSNR dB against the human score); sizes in CSS px. Empty without points."""
    pts = [(x, y, t) for x, y, t in points if np.isfinite(x) and np.isfinite(y)]
    if not pts:
        return Markup("")
    pad_l, pad_r, pad_t, pad_b = 56, 12, 12, 36
    w, h = width - pad_l - pad_r, height - pad_t - pad_b
    xs, ys = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    (x_lo, x_hi), (y_lo, y_hi) = (((a.min(), a.max()) if a.max() > a.min()
                                   else (a.min() - 0.5, a.max() + 0.5)) for a in (xs, ys))
    fs = 11 * _S
    out = [f'<svg class="chart" width="{width}" height="{height}" '
           f'viewBox="0 0 {width * _S} {height * _S}" role="img" '
           f'xmlns="http://www.w3.org/2000/svg"><title>{escape(y_label)} against '
           f'{escape(x_label)}</title>',
           f'<rect x="{pad_l * _S}" y="{pad_t * _S}" width="{w * _S}" height="{h * _S}" '
           f'fill="none" stroke="#bbb" stroke-width="{_S}"/>',
           f'<g font-size="{fs}" fill="#555" font-family="sans-serif">'
           f'<text x="{pad_l * _S}" y="{(pad_t + h + 14) * _S}">{x_lo:.2f}</text>'
           f'<text x="{(pad_l + w) * _S}" y="{(pad_t + h + 14) * _S}" text-anchor="end">'
           f'{x_hi:.2f}</text>'
           f'<text x="{(pad_l + w / 2) * _S}" y="{(height - 4) * _S}" text-anchor="middle">'
           f'{escape(x_label)}</text>'
           f'<text x="{(pad_l - 4) * _S}" y="{(pad_t + 10) * _S}" text-anchor="end">'
           f'{y_hi:.2f}</text>'
           f'<text x="{(pad_l - 4) * _S}" y="{(pad_t + h) * _S}" text-anchor="end">{y_lo:.2f}'
           f'</text><text x="{4 * _S}" y="{(pad_t + h / 2) * _S}">{escape(y_label)}</text>'
           f'</g>']
    for x, y, text in pts:
        cx = pad_l + (x - x_lo) / (x_hi - x_lo) * w
        cy = pad_t + h - (y - y_lo) / (y_hi - y_lo) * h
        out.append(f'<circle cx="{round(cx * _S)}" cy="{round(cy * _S)}" r="{4 * _S}" '
                   f'fill="#1565c0"><title>{escape(text)}</title></circle>')
    out.append("</svg>")
    return Markup("".join(out))
