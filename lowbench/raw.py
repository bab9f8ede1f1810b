"""The RAW pipeline: read a raw file, pack its Bayer mosaic, develop the ground truth.

Every task (synthetic DNGs and real Sony ARWs) goes through these same functions.

* :func:`read` opens a file with rawpy and checks that it is a complete 2x2 Bayer mosaic;
  anything else is a :class:`DataError` naming the file: a truncated file (TIFF directories
  declaring data past the end of the file, a LibRaw decode error, a constant or zero-tailed
  decode), not a raw (LibRaw's message as text), X-Trans, linear/non-Bayer.
* :func:`pack` is SID's ``pack_raw`` generalised: it reads the file's own Bayer phase
  (``raw_pattern`` + ``color_desc``) and per-channel black levels and white level, and returns
  float32 (4, H/2, W/2) in SID's channel order R, G(red row), B, G(blue row), scaled to [0, 1].
* :func:`develop` is the ground truth: LibRaw ``postprocess(use_camera_wb=True, half_size=False,
  no_auto_bright=True, output_bps=16, user_flip=0) / 65535``, cached on disk as .npy keyed by the
  file's sha256. ``user_flip=0`` keeps the sensor orientation of the packed input whatever the
  file's EXIF Orientation (LibRaw would otherwise rotate/mirror the truth but not the input).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rawpy

from lowbench.digest import sha256_file
from lowbench.errors import DataError
from lowbench.fsutil import atomic_save_npy
from lowbench.tiff import tiff_info

try:  # optional compiled kernel; the numpy path below is always correct on its own
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - depends on the environment
    numba = None
    HAVE_NUMBA = False

#: SID's channel order of the packed tensor.
PACKED_ORDER = ("R", "G_red_row", "B", "G_blue_row")

#: The LibRaw settings SID uses for its ground truth (and the ``libraw`` baseline), plus
#: ``user_flip=0``: develop in sensor orientation, the orientation of the packed network input.
DEVELOP_SETTINGS = dict(use_camera_wb=True, half_size=False, no_auto_bright=True, output_bps=16,
                        user_flip=0)

#: Rows at the bottom of a frame that, all exactly 0 DN, mark a zero-filled (truncated) decode.
_ZERO_TAIL_ROWS = 16


def libraw_message(exc: BaseException) -> str:
    """LibRaw's error as plain text: rawpy passes LibRaw's C string as bytes (``b'...'``)."""
    parts = [a.decode("utf-8", "replace") if isinstance(a, bytes | bytearray) else str(a)
             for a in exc.args]
    return "; ".join(p for p in parts if p) or type(exc).__name__


def check_complete(path: str | os.PathLike[str]) -> None:
    """:class:`DataError` naming ``path`` if its TIFF directories declare data past its end."""
    info = tiff_info(path)
    if info is None:
        return
    if info.broken is not None:
        raise DataError(f"{path} is truncated: {info.broken} but the file has {info.size} bytes; "
                        "copy or download the file again")
    if info.data_end > info.size:
        raise DataError(f"{path} is truncated: its image data ends at byte {info.data_end} but "
                        f"the file has {info.size} bytes; copy or download the file again")


def check_decoded(path: str | os.PathLike[str], mosaic: np.ndarray) -> None:
    """:class:`DataError` naming ``path`` if the decoded mosaic is what a cut-short file decodes
    to: one constant value everywhere, or its last rows all 0 DN (LibRaw zero-fills)."""
    sample = mosaic[::7, ::5]
    if sample.size and sample.min() == sample.max() and mosaic.min() == mosaic.max():
        raise DataError(f"{path} decodes to a constant frame (every pixel {int(mosaic.flat[0])} "
                        "DN): the file is truncated or damaged; copy or download it again")
    tail = mosaic[-_ZERO_TAIL_ROWS:]
    if mosaic.shape[0] > 4 * _ZERO_TAIL_ROWS and not tail.any():
        raise DataError(f"{path} decodes with its last {_ZERO_TAIL_ROWS} rows all 0 DN: the file "
                        "is truncated; copy or download it again")


def read(path: str | os.PathLike[str]) -> rawpy.RawPy:
    """Open a raw file with rawpy; a clear :class:`DataError` for anything this pipeline can't use.

    The caller owns the returned object (use it as a context manager or call ``close()``).
    """
    path = Path(path)
    raw = open_header(path)
    try:
        mosaic = raw.raw_image_visible  # forces the decode, so truncated files fail here
    except (rawpy.LibRawError, OSError, ValueError) as exc:
        raw.close()
        raise DataError(
            f"cannot decode {path} (LibRaw: {libraw_message(exc)}); the file is truncated or "
            "damaged: copy or download it again"
        ) from None
    try:
        check_decoded(path, mosaic)
    except DataError:
        raw.close()
        raise
    return raw


def open_header(path: str | os.PathLike[str]) -> rawpy.RawPy:
    """Open a raw file with rawpy without decoding its pixels, after checking that it is complete
    (:func:`check_complete`) and a 2x2 Bayer mosaic; :class:`DataError` naming the file if not.

    The caller owns the returned object (use it as a context manager or call ``close()``).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"raw file not found: {path}")
    check_complete(path)
    try:
        raw = rawpy.imread(str(path))
    except (rawpy.LibRawError, OSError, ValueError) as exc:
        raise DataError(
            f"cannot read {path} as a raw file (LibRaw: {libraw_message(exc)}); lowbench reads "
            "camera raws and DNGs that LibRaw supports"
        ) from None
    try:
        bayer_phase(raw)
    except DataError as exc:
        raw.close()
        raise DataError(f"{path}: {exc}") from None
    return raw


def bayer_phase(raw: rawpy.RawPy) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int],
                                         tuple[int, int]]:
    """(row, col) offsets inside the 2x2 tile of R, G on the red row, B, G on the blue row.

    Read from the file's own ``raw_pattern`` and ``color_desc``; raises :class:`DataError` for a
    CFA that is not a 2x2 R/G/B Bayer mosaic (X-Trans, four-colour CYGM, linear DNG...).
    """
    pattern = raw.raw_pattern
    if raw.raw_type != rawpy.RawType.Flat or pattern is None or np.shape(pattern) != (2, 2):
        shape = None if pattern is None else np.shape(pattern)
        raise DataError(
            f"unsupported colour filter array (pattern {shape}, type {raw.raw_type.name}); "
            "lowbench supports 2x2 Bayer sensors only (not X-Trans or non-Bayer raws)"
        )
    desc = raw.color_desc.decode("ascii", "replace")
    colours = [[desc[pattern[i, j]] for j in range(2)] for i in range(2)]
    flat = "".join(colours[0] + colours[1])
    if sorted(flat) != ["B", "G", "G", "R"]:
        raise DataError(f"unsupported colour filter array {flat!r}; expected Bayer R/G/G/B")
    pos = {colours[i][j]: (i, j) for i in range(2) for j in range(2) if colours[i][j] != "G"}
    r_row, b_row = pos["R"][0], pos["B"][0]
    g_red = (r_row, 1 - pos["R"][1])
    g_blue = (b_row, 1 - pos["B"][1])
    return pos["R"], g_red, pos["B"], g_blue


def channel_scales(raw: rawpy.RawPy, phase, white_level: float | None = None
                   ) -> tuple[list[float], list[float]]:
    """Per packed channel black level and 1 / (white - black), in the packed order (DN).

    ``white_level``: the saturation level to scale by (DN); None uses the file's
    (rawpy's ``white_level``). The SID tasks pass SID's constant 16383 (data_manifest.yaml).
    """
    pattern = raw.raw_pattern
    blacks_per_colour = raw.black_level_per_channel
    white = float(raw.white_level if white_level is None else white_level)
    blacks, scales = [], []
    for r, c in phase:
        black = float(blacks_per_colour[pattern[r, c]])
        if white <= black:
            raise DataError(f"white level {white} is not above black level {black}")
        blacks.append(black)
        scales.append(1.0 / (white - black))
    return blacks, scales


def pack_mosaic(mosaic: np.ndarray, phase, blacks, scales) -> np.ndarray:
    """Pack an (H, W) uint16 mosaic into float32 (4, H/2, W/2), normalised and clipped to [0, 1].

    ``phase``: the four (row, col) tile offsets in packed order; ``blacks``/``scales`` per packed
    channel. Odd trailing rows/columns are dropped (as SID does). Uses a compiled kernel when numba
    is installed, else a numpy look-up table per channel (one gather pass per output element).
    """
    h2, w2 = mosaic.shape[0] // 2, mosaic.shape[1] // 2
    out = np.empty((4, h2, w2), dtype=np.float32)
    if HAVE_NUMBA and mosaic.dtype == np.uint16:
        offs = np.asarray(phase, dtype=np.int64)
        _pack_numba(mosaic, offs, np.asarray(blacks, np.float32), np.asarray(scales, np.float32),
                    out)
        return out
    for ch, ((r, c), black, scale) in enumerate(zip(phase, blacks, scales, strict=True)):
        view = mosaic[r: 2 * h2: 2, c: 2 * w2: 2]
        if mosaic.dtype == np.uint16:
            lut = _lut(black, scale)
            np.take(lut, view, out=out[ch])
        else:
            np.subtract(view, black, out=out[ch], dtype=np.float32)
            out[ch] *= np.float32(scale)
            np.clip(out[ch], 0.0, 1.0, out=out[ch])
    return out


def _lut(black: float, scale: float) -> np.ndarray:
    """uint16 -> float32 table: clip((v - black) * scale, 0, 1), evaluated in float32 like SID."""
    values = np.arange(65536, dtype=np.float32)
    return np.clip((values - np.float32(black)) * np.float32(scale), 0.0, 1.0).astype(np.float32)


if HAVE_NUMBA:

    @numba.njit(cache=True, parallel=True, fastmath=True)
    def _pack_numba(mosaic, offs, blacks, scales, out):  # pragma: no cover - compiled
        h2, w2 = out.shape[1], out.shape[2]
        for y in numba.prange(h2):
            for ch in range(4):
                row = mosaic[2 * y + offs[ch, 0]]
                c0 = offs[ch, 1]
                b = blacks[ch]
                s = scales[ch]
                o = out[ch, y]
                for x in range(w2):
                    v = (np.float32(row[2 * x + c0]) - b) * s
                    if v < 0:
                        v = np.float32(0.0)
                    if v > 1:
                        v = np.float32(1.0)
                    o[x] = v


def pack(raw: rawpy.RawPy) -> np.ndarray:
    """SID's ``pack_raw``, generalised: float32 (4, H/2, W/2) in [0, 1], order R, G, B, G.

    Uses the file's own Bayer phase, per-channel black levels and white level.
    """
    phase = bayer_phase(raw)
    blacks, scales = channel_scales(raw, phase)
    return pack_mosaic(raw.raw_image_visible, phase, blacks, scales)


def amplify(packed: np.ndarray, ratio: float) -> np.ndarray:
    """SID's network input: clip(packed * ratio, 0, 1), float32 (in place on a copy)."""
    out = packed * np.float32(ratio)
    np.minimum(out, 1.0, out=out)
    return out


def develop_raw(raw: rawpy.RawPy) -> np.ndarray:
    """Develop with LibRaw using SID's ground-truth settings in sensor orientation (whatever the
    file's Orientation tag, like the packed input): float32 (H, W, 3) sRGB in [0, 1]."""
    rgb = raw.postprocess(**DEVELOP_SETTINGS)
    return rgb.astype(np.float32) / np.float32(65535.0)


def develop(path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None) -> np.ndarray:
    """Ground truth of a long exposure, cached as ``<cache_dir>/gt/<sha256>.npy``.

    float32 (H, W, 3) in [0, 1]. ``cache_dir=None`` disables the cache.
    """
    key = sha256_file(path)
    # ".sensor": developed in sensor orientation (user_flip=0); older, rotated entries are unused
    cached = Path(cache_dir) / "gt" / f"{key}.sensor.npy" if cache_dir is not None else None
    if cached is not None and cached.is_file():
        try:
            arr = np.load(cached, allow_pickle=False)
            if arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.float32:
                return arr
        except (ValueError, OSError):
            pass  # a damaged cache entry is simply rebuilt
    with read(path) as raw:
        arr = develop_raw(raw)
    if cached is not None:
        atomic_save_npy(cached, arr)
    return arr
