"""One pair of a task: what it is (:class:`Pair`, the :class:`RawChecks` of its files) and how it
loads: the network input ``clip(pack(raw) x ratio, 0, 1)`` of the short exposure and the ground
truth (LibRaw development of the long exposure, ``lowbench.raw``), both cropped by the task's
crop rule (:func:`crop_box`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lowbench import raw as rawpipe
from lowbench.errors import DataError
from lowbench.paths import cache_dir
from lowbench.tiff import tiff_info


@dataclass(frozen=True)
class RawChecks:
    """What every raw file of a task must be (None = not checked): camera ("Make Model", as the
    TIFF Make/Model tags say, case-insensitive), frame (rows, columns of the visible raw
    mosaic), black level (DN, every channel), the file's white level at most ``max_white_level``
    (DN)."""

    camera: str | None = None
    frame: tuple[int, int] | None = None
    black_level: int | None = None
    max_white_level: int | None = None

    @classmethod
    def from_spec(cls, spec: dict[str, Any] | None) -> RawChecks | None:
        """The ``raw_checks:`` mapping of a manifest task (None when it has none)."""
        if not spec:
            return None
        frame = spec.get("frame")
        return cls(camera=spec.get("camera"),
                   frame=(int(frame[0]), int(frame[1])) if frame else None,
                   black_level=spec.get("black_level"),
                   max_white_level=spec.get("max_white_level"))

    def problems(self, path: Path, raw: Any) -> list[str]:
        """Why the opened raw ``raw`` of ``path`` is not what the task expects (empty = fine)."""
        out = []
        if self.camera is not None:
            info = tiff_info(path)
            camera = info.camera if info is not None else None
            if camera is None or camera.lower() != self.camera.lower():
                out.append(f"camera {camera or 'unknown'}, expected {self.camera}")
        height, width = int(raw.sizes.height), int(raw.sizes.width)
        if self.frame is not None and (height, width) != self.frame:
            out.append(f"frame {height} x {width}, expected {self.frame[0]} x {self.frame[1]}")
        blacks = sorted({int(b) for b in raw.black_level_per_channel})
        if self.black_level is not None and blacks != [self.black_level]:
            out.append(f"black level {'/'.join(map(str, blacks))} DN, expected "
                       f"{self.black_level}")
        if self.max_white_level is not None and int(raw.white_level) > self.max_white_level:
            out.append(f"white level {int(raw.white_level)} DN, expected at most "
                       f"{self.max_white_level}")
        return out


@dataclass(frozen=True)
class Pair:
    """One evaluation/training sample: absolute paths, SID ratio, optional centred raw crop."""

    pair_id: str
    short: Path
    long: Path
    ratio: float
    scene_id: int
    crop: int | None = None
    #: DN that normalises the packed input; None: the file's own white level (rawpy)
    white_level: int | None = None
    checks: RawChecks | None = None

    @property
    def ratio_label(self) -> str:
        """'x100', 'x250', 'x300' (the ratio rounded to an integer)."""
        return f"x{round(self.ratio)}"


def crop_box(height: int, width: int, size: int | None) -> tuple[int, int, int, int]:
    """Centred, Bayer-aligned (even offsets) crop of a raw frame: (y0, x0, h, w) in raw pixels."""
    if size is None:
        return 0, 0, height - height % 2, width - width % 2
    if size % 2 or size > min(height, width):
        raise DataError(f"crop {size} does not fit a {height} x {width} raw frame")
    y0 = ((height - size) // 2) & ~1
    x0 = ((width - size) // 2) & ~1
    return y0, x0, size, size


def packed_input(raw: Any, pair: Pair) -> np.ndarray:
    """The network input of ``pair`` from its opened short-exposure raw: float32 (4, h, w)."""
    mosaic = raw.raw_image_visible
    try:
        y0, x0, h, w = crop_box(*mosaic.shape, pair.crop)
    except DataError as err:
        raise DataError(f"{pair.short}: {err}") from None
    phase = rawpipe.bayer_phase(raw)
    blacks, scales = rawpipe.channel_scales(raw, phase, pair.white_level)
    packed = rawpipe.pack_mosaic(mosaic[y0:y0 + h, x0:x0 + w], phase, blacks, scales)
    return rawpipe.amplify(packed, pair.ratio)


def load_input(pair: Pair) -> np.ndarray:
    """Read, pack, amplify and crop the short exposure of ``pair``: float32 (4, h, w)."""
    with rawpipe.read(pair.short) as raw:
        return packed_input(raw, pair)


def frame_mismatch(short: Path, short_hw: tuple[int, int], long: Path,
                   long_hw: tuple[int, int]) -> str:
    """The one line for a pair whose two exposures are frames of different sizes (``*_hw``:
    raw rows, columns)."""
    return (f"short exposure {short} is {short_hw[0]} x {short_hw[1]} pixels but long exposure "
            f"{long} is {long_hw[0]} x {long_hw[1]} (raw rows x columns); the two exposures of "
            "a pair must be frames of the same size")


def check_pair(pair: Pair) -> None:
    """:class:`DataError` naming the file unless both raws of ``pair`` open, are complete Bayer
    raws of one frame size and pass the task's raw checks (headers only: milliseconds)."""
    sizes = []
    for path in (pair.short, pair.long):
        with rawpipe.open_header(path) as raw:
            sizes.append((int(raw.sizes.height), int(raw.sizes.width)))
            problems = pair.checks.problems(path, raw) if pair.checks is not None else []
        if problems:
            raise DataError(_unexpected_file(path, problems))
    if sizes[0] != sizes[1]:
        raise DataError(frame_mismatch(pair.short, sizes[0], pair.long, sizes[1]))


def _unexpected_file(path: Path, problems: list[str]) -> str:
    """The one line for a raw file that fails its task's raw checks."""
    return (f"{path} is not what its task expects: {'; '.join(problems)}; point --data-root at "
            "the task's data (`lowbench data verify TASK` lists every such file)")


def load_truth(pair: Pair, cache: Path | None = None) -> np.ndarray:
    """Ground truth of ``pair`` (cached LibRaw development in sensor orientation, cropped):
    float32 (2h, 2w, 3). Checks the pair first (:func:`check_pair`)."""
    check_pair(pair)
    gt = rawpipe.develop(pair.long, cache_dir() if cache is None else cache)
    y0, x0, h, w = crop_box(gt.shape[0], gt.shape[1], pair.crop)
    return gt[y0:y0 + h, x0:x0 + w]
