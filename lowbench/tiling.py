"""Tiled inference: a packed frame cut into overlapping tiles, each run through the variant,
blended back with linear ramps.

A full Sony frame (2848 x 4256 raw, 1424 x 2128 packed) through the SID U-Net holds gigabytes
of activations at once; tiles bound that peak by the tile's size, not the frame's. Sizes are in
**packed pixels** (the network's input grid: half the raw size), the output is ``scale`` (2)
times larger.

* :func:`spans` cuts one axis: tiles of ``tile`` pixels whose starts advance by ``tile -
  overlap``, the last one ending at the frame's edge (it may be shorter). Both are multiples of
  :data:`ALIGN` (the network's pad multiple), so every tile starts on the untiled frame's
  pooling grid and a pixel far from tile borders sees exactly what it sees untiled.
* :func:`ramp` weighs one tile's output along one axis: 1 inside, a linear ramp over the
  ``overlap x scale`` output pixels shared with a neighbour; the two ramps of a shared strip sum
  to 1, so the blend is a convex combination and needs no weight accumulator.
* :func:`tiled_forward` runs a callable tile by tile and blends the outputs. It works on torch
  tensors and on numpy arrays alike (the clean memory worker of ONNX Runtime / OpenVINO has no
  torch), so this module imports numpy only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lowbench.errors import LowbenchError

#: Tile and overlap must be multiples of this (packed pixels): the U-Nets' pad multiple, so
#: tile starts stay on the untiled frame's 16-pixel pooling grid.
ALIGN = 16


@dataclass(frozen=True)
class Tiling:
    """Tile side and overlap, packed pixels (multiples of :data:`ALIGN`, overlap < tile)."""

    tile: int
    overlap: int = 0

    def __post_init__(self) -> None:
        check_tiling(self.tile, self.overlap)

    def describe(self) -> dict[str, Any]:
        """The record's ``tiling``: sizes (packed px) and the blend."""
        return {"tile_px": self.tile, "overlap_px": self.overlap, "units": "packed pixels",
                "blend": "linear ramp across the overlap", "align_px": ALIGN}

    @property
    def label(self) -> str:
        """``512/32``: tile / overlap, packed px (the row's ``tiling`` column)."""
        return f"{self.tile}/{self.overlap}"


def check_tiling(tile: int, overlap: int) -> None:
    """LowbenchError naming the bad value and the fix, unless ``tile`` and ``overlap`` (packed
    px) are multiples of :data:`ALIGN` with ``0 <= overlap < tile``."""
    if tile < ALIGN or tile % ALIGN:
        raise LowbenchError(f"--tile {tile} must be a positive multiple of {ALIGN} packed pixels "
                            f"(the networks' pad multiple), e.g. --tile 512")
    if overlap < 0 or overlap % ALIGN:
        raise LowbenchError(f"--overlap {overlap} must be a multiple of {ALIGN} packed pixels "
                            "(0, 16, 32, ...), so tiles start on the untiled frame's grid")
    if overlap >= tile:
        raise LowbenchError(f"--overlap {overlap} must be smaller than --tile {tile}")


def spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each tile along an axis of ``length`` packed px: starts advance by
    ``tile - overlap``; the last tile ends at ``length`` (and may be shorter than ``tile``, but
    always longer than ``overlap``). One span ``(0, length)`` when the axis fits one tile."""
    step = tile - overlap
    out: list[tuple[int, int]] = []
    start = 0
    while start + tile < length:
        out.append((start, start + tile))
        start += step
    out.append((start, length))
    return out


def ramp(length: int, ramp_in: int, ramp_out: int) -> np.ndarray:
    """float32 weights of ``length`` output pixels: ``(i + 0.5) / ramp_in`` over the first
    ``ramp_in``, ``(ramp_out - i - 0.5) / ramp_out`` over the last ``ramp_out``, 1 elsewhere."""
    w = np.ones(length, dtype=np.float64)
    if ramp_in:
        w[:ramp_in] = (np.arange(ramp_in) + 0.5) / ramp_in
    if ramp_out:
        w[length - ramp_out:] *= (ramp_out - np.arange(ramp_out) - 0.5) / ramp_out
    return w.astype(np.float32)


def tile_shapes(shape: tuple[int, ...], tiling: Tiling) -> list[tuple[int, ...]]:
    """The distinct input shapes ``(N, C, h, w)`` the tiles of a ``shape`` input have (what a
    runtime builds ahead of the timed loop)."""
    n, c, h, w = shape
    hs = {b - a for a, b in spans(h, tiling.tile, tiling.overlap)}
    ws = {b - a for a, b in spans(w, tiling.tile, tiling.overlap)}
    return sorted((n, c, th, tw) for th in hs for tw in ws)


def tiled_forward(fn: Callable[[Any], Any], x: Any, tiling: Tiling, scale: int = 2) -> Any:
    """``fn`` (packed ``(N, 4, h, w)`` -> ``(N, C, scale*h, scale*w)``) run on each tile of
    ``x`` (a torch tensor or a numpy array) and blended: the output of the whole frame, of
    ``x``'s kind. Peak memory: the input, one output of the frame, one tile's activations."""
    _, _, h, w = x.shape
    rows = spans(h, tiling.tile, tiling.overlap)
    cols = spans(w, tiling.tile, tiling.overlap)
    r = tiling.overlap * scale
    out = None
    for i, (y0, y1) in enumerate(rows):
        wy = ramp((y1 - y0) * scale, r if i else 0, r if i < len(rows) - 1 else 0)
        for j, (x0, x1) in enumerate(cols):
            wx = ramp((x1 - x0) * scale, r if j else 0, r if j < len(cols) - 1 else 0)
            y = fn(x[:, :, y0:y1, x0:x1])
            weight = np.outer(wy, wx)
            if isinstance(y, np.ndarray):
                if out is None:
                    out = np.zeros((y.shape[0], y.shape[1], h * scale, w * scale), y.dtype)
                out[:, :, y0 * scale:y1 * scale, x0 * scale:x1 * scale] += y * weight
            else:
                import torch

                if out is None:
                    out = y.new_zeros((y.shape[0], y.shape[1], h * scale, w * scale))
                out[:, :, y0 * scale:y1 * scale, x0 * scale:x1 * scale] += (
                    y * torch.from_numpy(weight).to(device=y.device, dtype=y.dtype))
    return out


def run_frame(fn: Callable[[Any], Any], x: Any, tiling: Tiling | None) -> Any:
    """``fn`` on the whole frame ``x``, tile by tile when ``tiling`` is given
    (:func:`tiled_forward`)."""
    return fn(x) if tiling is None else tiled_forward(fn, x, tiling)


def payload_tiling(payload: dict[str, Any]) -> Tiling | None:
    """The :class:`Tiling` of a worker payload's ``tile`` / ``overlap`` (packed px), or None."""
    return Tiling(int(payload["tile"]), int(payload.get("overlap") or 0)) \
        if payload.get("tile") else None
