"""The gallery of one run: lossless PNG crops of input, output and truth, content-addressed.

:func:`write_gallery_crop` writes the centred :data:`GALLERY_CROP`-pixel crops of a pair's
amplified input (:func:`input_preview`), the model's output and the ground truth under the
results folder's ``gallery/``; the record's ``gallery`` items name them relative to that folder's
parent. Images are float (H, W, 3) in [0, 1]; PNGs are 8-bit sRGB.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from lowbench import raw as rawpipe
from lowbench.digest import bytes_digest
from lowbench.fsutil import atomic_write_bytes
from lowbench.pairs import Pair, packed_input

#: Side (output pixels) of the centred gallery crop.
GALLERY_CROP = 192
#: At most this many gallery crops per run: the first evaluated pair of each exposure ratio.
GALLERY_MAX = 3


def _to_png(img: np.ndarray) -> bytes:
    """8-bit RGB PNG bytes of a float (H, W, 3) image in [0, 1] (clipped, rounded)."""
    from PIL import Image

    u8 = np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(u8, "RGB").save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def _center(img: np.ndarray, side: int) -> np.ndarray:
    """The centred ``side`` x ``side`` (pixels) crop of ``img``, smaller if the image is."""
    h, w = img.shape[:2]
    side = min(side, h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    return img[y0:y0 + side, x0:x0 + side]


def input_preview(packed: np.ndarray) -> np.ndarray:
    """The amplified network input as a viewable image: (R, mean G, B) of the packed
    (4, h, w) input, sRGB-like gamma 1/2.2, upsampled 2x (nearest): float (2h, 2w, 3)."""
    rgb = np.stack([packed[0], (packed[1] + packed[3]) / 2, packed[2]], axis=-1)
    rgb = np.clip(rgb, 0.0, 1.0) ** (1 / 2.2)
    return rgb.repeat(2, axis=0).repeat(2, axis=1)


def store_png(folder: Path, img: np.ndarray) -> str:
    """Write ``img`` (float (H, W, 3) in [0, 1]) as a PNG content-addressed under ``folder``
    (atomically; an existing file of that content is kept); its name ``<sha256[:24]>.png``."""
    data = _to_png(img)
    name = f"{bytes_digest(data, 24)}.png"
    path = folder / name
    if not path.exists():
        atomic_write_bytes(path, data)
    return name


def write_gallery_crop(folder: Path, pair: Pair, out: np.ndarray, gt: np.ndarray
                       ) -> dict[str, Any]:
    """Write the centred GALLERY_CROP crops of input, output and truth as PNGs (lossless) under
    ``folder``; returns the gallery item with names relative to ``folder.parent``."""
    with rawpipe.read(pair.short) as raw:
        preview = input_preview(packed_input(raw, pair))
    prefix = folder.name
    return {"pair": pair.pair_id, "ratio": pair.ratio_label,
            "input": f"{prefix}/{store_png(folder, _center(preview, GALLERY_CROP))}",
            "output": f"{prefix}/{store_png(folder, _center(out, GALLERY_CROP))}",
            "truth": f"{prefix}/{store_png(folder, _center(gt, GALLERY_CROP))}"}
