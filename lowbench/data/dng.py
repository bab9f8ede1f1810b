"""A minimal, standards-following DNG writer for Bayer mosaics (via tifffile).

Why not pidng: its 14-bit packing is broken, and LibRaw (rawpy) reads plain 16-bit samples fine.
So lowbench stores 14-bit values in uncompressed 16-bit samples. Deflate-compressed DNG is not
used because the LibRaw inside rawpy's wheels is built without zlib and cannot read it; the files
are compressed in transit anyway (git packs and wheels are zip/zlib compressed).

The tags written are the ones LibRaw needs to decode and develop a CFA DNG: DNGVersion,
CFARepeatPatternDim/CFAPattern (the Bayer phase), BlackLevelRepeatDim/BlackLevel (per-channel
black levels, in CFA order), WhiteLevel, ColorMatrix1 (XYZ -> camera, D65) and AsShotNeutral
(the as-shot white balance, in camera RGB).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tifffile

from lowbench.fsutil import atomic_write_bytes

# TIFF/EP + DNG tag ids (Adobe DNG specification 1.4).
_CFA_REPEAT_PATTERN_DIM = 33421
_CFA_PATTERN = 33422
_DNG_VERSION = 50706
_DNG_BACKWARD_VERSION = 50707
_UNIQUE_CAMERA_MODEL = 50708
_BLACK_LEVEL_REPEAT_DIM = 50713
_BLACK_LEVEL = 50714
_WHITE_LEVEL = 50717
_COLOR_MATRIX_1 = 50721
_AS_SHOT_NEUTRAL = 50728
_CALIBRATION_ILLUMINANT_1 = 50778
_MAKE = 271
_MODEL = 272
_ORIENTATION = 274
_PHOTOMETRIC_CFA = 32803
_D65 = 21

#: CFA colour codes used by the CFAPattern tag: 0 = red, 1 = green, 2 = blue.
CFA_CODES = {"R": 0, "G": 1, "B": 2}


def _rationals(values: Sequence[float], denominator: int = 1_000_000) -> tuple[int, ...]:
    out: list[int] = []
    for v in values:
        out += [int(round(float(v) * denominator)), denominator]
    return tuple(out)


def write_dng(
    path: str | os.PathLike[str],
    mosaic: np.ndarray,
    *,
    cfa: str = "RGGB",
    black_levels: Sequence[int] = (512, 512, 512, 512),
    white_level: int = 16383,
    xyz_to_camera: Sequence[float],
    as_shot_neutral: Sequence[float],
    camera_model: str = "lowbench synthetic",
    orientation: int = 1,
) -> Path:
    """Write a Bayer mosaic (H, W) of uint16 digital numbers as a DNG file, atomically.

    ``cfa`` is the 2x2 pattern read row-major (e.g. "RGGB", "BGGR", "GRBG", "GBRG");
    ``black_levels`` are given per position of that 2x2 pattern (row-major, DN);
    ``xyz_to_camera`` is the 3x3 ColorMatrix1 (row-major, D65);
    ``as_shot_neutral`` is the camera-RGB value of a neutral surface (white balance);
    ``camera_model`` is "Make Model" (split at the first space into the Make and Model tags);
    ``orientation`` is the EXIF/TIFF Orientation tag (1-8; 1 = as stored).
    Returns the final path. The file is written to a temporary name and renamed into place.
    """
    arr = np.ascontiguousarray(mosaic)
    if arr.dtype != np.uint16 or arr.ndim != 2:
        raise ValueError(f"mosaic must be a 2-D uint16 array, got {arr.dtype} {arr.shape}")
    if len(cfa) != 4 or set(cfa) - set(CFA_CODES):
        raise ValueError(f"cfa must be four letters of R, G, B (e.g. RGGB), got {cfa!r}")
    if orientation not in range(1, 9):
        raise ValueError(f"orientation must be an EXIF Orientation 1-8, got {orientation!r}")
    path = Path(path)
    pattern = tuple(CFA_CODES[c] for c in cfa)
    make, _, model = camera_model.partition(" ")
    extratags = [
        (_DNG_VERSION, "B", 4, (1, 4, 0, 0), True),
        (_DNG_BACKWARD_VERSION, "B", 4, (1, 1, 0, 0), True),
        (_UNIQUE_CAMERA_MODEL, "s", 0, camera_model, True),
        (_MAKE, "s", 0, make, True),
        (_MODEL, "s", 0, model or make, True),
        (_CFA_REPEAT_PATTERN_DIM, "H", 2, (2, 2), True),
        (_CFA_PATTERN, "B", 4, pattern, True),
        (_BLACK_LEVEL_REPEAT_DIM, "H", 2, (2, 2), True),
        (_BLACK_LEVEL, "I", 4, tuple(int(b) for b in black_levels), True),
        (_WHITE_LEVEL, "I", 1, int(white_level), True),
        (_COLOR_MATRIX_1, "2i", 9, _rationals(xyz_to_camera), True),
        (_CALIBRATION_ILLUMINANT_1, "H", 1, _D65, True),
        (_AS_SHOT_NEUTRAL, "2I", 3, _rationals(as_shot_neutral), True),
    ]
    if orientation != 1:  # 1 is TIFF's default: files without the tag keep their exact bytes
        extratags.append((_ORIENTATION, "H", 1, int(orientation), True))
    buffer = io.BytesIO()  # built in memory, written through the one atomic writer
    tifffile.imwrite(
        buffer, arr, photometric=_PHOTOMETRIC_CFA, extratags=extratags, metadata=None,
        subfiletype=0, software=False,
    )
    return atomic_write_bytes(path, buffer.getvalue())
