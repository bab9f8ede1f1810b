"""Synthetic SID-style data: unprocess sRGB scenes into Bayer DNGs with a physical noise model.

Pipeline (also documented in ``data_manifest.yaml``), for one scene:

1. sRGB (8-bit) -> linear light with the sRGB EOTF (IEC 61966-2-1), evaluated as a 256-entry
   table.
2. linear sRGB -> CIE XYZ (D65) -> camera RGB with the colour matrix of the Sony A7S II
   (``XYZ_TO_CAMERA``, LibRaw/dcraw's ``adobe_coeff`` entry for "Sony ILCE-7SM2", the camera of
   SID's Sony set). The same matrix is stored in the DNG as ColorMatrix1, and the camera-RGB value
   of sRGB white is stored as AsShotNeutral, so LibRaw's ``use_camera_wb`` development inverts the
   unprocessing.
3. camera RGB -> Bayer mosaic in the requested CFA phase (RGGB for every shipped file).
4. Long exposure (10 s, the ground truth): signal = camera RGB x (white - black) x
   LONG_EXPOSURE_FILL
   digital numbers (DN) above the black level 512, rounded to integers, clipped to the white
   level 16383 (Sony A7S II values, as in SID). It is noise-free: SID's long exposures are
   "clean or nearly so", and a clean target makes the metric measure the model.
5. Short exposures at 0.1 s, 0.04 s and 0.033 s (SID's x100, x250, x300 after the cap; the true
   ratio 10/0.033 = 303 is simulated, the network is told 300 as in SID): expected electrons
   e = signal / true_ratio / GAIN_DN_PER_ELECTRON; Poisson shot noise on e; Gaussian read noise
   of READ_NOISE_DN; black level added; rounded to 14-bit integers and clipped to [0, 16383].
   One fixed seed per pair: SeedSequence([TASK_SEED, scene_id, exposure_index]).

Test scenes are natural photos shipped inside scikit-image (``skimage.data``); train scenes are
procedural "dead leaves" images (the texture model of camera-quality charts), so train and test
never share content.

Reproducibility decision: the test split is a fixed artifact *shipped inside the package*
(``lowbench/data/synth_test``), pinned by sha256 in the manifest, rather than regenerated on each
machine. Regeneration would pass through libm-dependent float steps (resampling, colour matrix,
numpy's Poisson/normal samplers), and we cannot prove those are bit-identical on every x86 and
Jetson build; shipping 28 small DNGs (~14 MiB, compressed by git and the wheel) makes every machine
evaluate the identical bytes. ``lowbench data generate`` rebuilds them (same bytes on the machine
that made them; the tests check determinism), and any change to this module bumps
``GENERATOR_VERSION`` and the task version: results of different versions are never compared.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, getcontext
from pathlib import Path

import numpy as np

from lowbench.data.dng import write_dng

GENERATOR_VERSION = 1
TASK_SEED = 20180618  # CVPR 2018, the SID paper

BLACK_LEVEL = 512
WHITE_LEVEL = 16383
#: XYZ (D65) -> camera RGB of the Sony ILCE-7SM2 (A7S II), LibRaw adobe_coeff x 1/10000.
XYZ_TO_CAMERA = np.array(
    [[0.5838, -0.1430, -0.0246], [-0.3497, 1.1477, 0.2297], [-0.0748, 0.1885, 0.5778]]
)
#: linear sRGB (D65) -> XYZ, IEC 61966-2-1.
SRGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
     [0.0193339, 0.1191920, 0.9503041]]
)
#: Fraction of the sensor range that linear sRGB 1.0 fills in the long exposure.
LONG_EXPOSURE_FILL = 0.9
LONG_EXPOSURE_S = 10.0
#: Short exposure times (s): SID's three Sony exposures for a 10 s reference.
SHORT_EXPOSURES_S = (0.1, 0.04, 0.033)
#: Conversion gain (DN per electron) and read noise (DN, std dev): a high-ISO, SID-like regime.
GAIN_DN_PER_ELECTRON = 0.5
READ_NOISE_DN = 2.5

#: The test scenes: (skimage.data name, scene id). Crops are SCENE_SIZE x SCENE_SIZE.
TEST_SCENES = (
    ("astronaut", 90001),
    ("chelsea", 90002),
    ("coffee", 90003),
    ("rocket", 90004),
    ("hubble_deep_field", 90005),
    ("retina", 90006),
    ("immunohistochemistry", 90007),
)
SCENE_SIZE = 512
TRAIN_SCENE_ID_BASE = 80000

#: The full-frame scenes (``synth-full``): (skimage.data name, scene id). Both photos are 2:3
#: landscape like the Sony A7S II's sensor; each is resampled to the sensor's full frame.
FULL_SCENES = (("rocket", 91001), ("coffee", 91002))
#: The Sony A7S II's visible raw frame (rows, columns), as in SID's Sony set.
FULL_FRAME = (2848, 4256)
#: Short exposures of a full-frame scene (s): SID's x100 and (capped) x300.
FULL_SHORT_EXPOSURES_S = (0.1, 0.033)


def srgb_to_linear_table() -> np.ndarray:
    """The sRGB EOTF for the 256 8-bit codes (float64), computed with correctly rounded decimals.

    ``decimal`` rounds powers correctly on every platform, so the table itself does not depend on
    the C library.
    """
    getcontext().prec = 40
    out = []
    for code in range(256):
        c = Decimal(code) / Decimal(255)
        if c <= Decimal("0.04045"):
            v = c / Decimal("12.92")
        else:
            v = ((c + Decimal("0.055")) / Decimal("1.055")) ** Decimal("2.4")
        out.append(float(v))
    return np.array(out, dtype=np.float64)


def srgb_to_camera_matrix() -> np.ndarray:
    """3x3 matrix taking linear sRGB to (un-white-balanced) camera RGB."""
    return XYZ_TO_CAMERA @ SRGB_TO_XYZ


def as_shot_neutral() -> np.ndarray:
    """Camera RGB of linear sRGB white, normalised to green = 1 (DNG AsShotNeutral)."""
    white = srgb_to_camera_matrix().sum(axis=1)
    return white / white[1]


def unprocess(srgb_u8: np.ndarray) -> np.ndarray:
    """sRGB uint8 (H, W, 3) -> camera RGB float64 (H, W, 3), white balanced so that sRGB white
    maps to AsShotNeutral x 1/max(AsShotNeutral) (no channel exceeds 1 for white)."""
    lin = srgb_to_linear_table()[srgb_u8]
    cam = lin @ srgb_to_camera_matrix().T
    cam /= srgb_to_camera_matrix().sum(axis=1).max()
    return np.clip(cam, 0.0, 1.0)


def mosaic(cam: np.ndarray, cfa: str = "RGGB") -> np.ndarray:
    """Sample camera RGB (H, W, 3) through a 2x2 Bayer CFA -> (H, W) float64."""
    idx = {"R": 0, "G": 1, "B": 2}
    out = np.empty(cam.shape[:2], dtype=np.float64)
    for k, colour in enumerate(cfa):
        r, c = divmod(k, 2)
        out[r::2, c::2] = cam[r::2, c::2, idx[colour]]
    return out


def long_exposure_dn(signal: np.ndarray) -> np.ndarray:
    """Noise-free long exposure: uint16 DN = black + round(signal x fill x range), clipped."""
    dn = BLACK_LEVEL + np.rint(signal * LONG_EXPOSURE_FILL * (WHITE_LEVEL - BLACK_LEVEL))
    return np.clip(dn, 0, WHITE_LEVEL).astype(np.uint16)


def short_exposure_dn(long_dn: np.ndarray, true_ratio: float, rng: np.random.Generator
                      ) -> np.ndarray:
    """Short exposure from the long one: Poisson shot noise, Gaussian read noise, 14-bit rounding.

    ``long_dn`` is the noise-free long exposure (uint16 DN incl. black level).
    """
    signal_dn = (long_dn.astype(np.float64) - BLACK_LEVEL) / true_ratio
    electrons = rng.poisson(signal_dn / GAIN_DN_PER_ELECTRON)
    read = rng.normal(0.0, READ_NOISE_DN, size=long_dn.shape)
    dn = np.rint(BLACK_LEVEL + electrons * GAIN_DN_PER_ELECTRON + read)
    return np.clip(dn, 0, WHITE_LEVEL).astype(np.uint16)


def _fit_square(img: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resample to size x size (area/bilinear), uint8 sRGB."""
    from skimage.transform import resize

    h, w = img.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    sq = img[y0:y0 + s, x0:x0 + s, :3]
    if s == size:
        return np.ascontiguousarray(sq)
    out = resize(sq, (size, size), order=1, anti_aliasing=s > size, preserve_range=True)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def test_scene(name: str, size: int = SCENE_SIZE) -> np.ndarray:
    """A natural test scene from ``skimage.data`` as uint8 sRGB (size, size, 3)."""
    import skimage.data

    return _fit_square(getattr(skimage.data, name)(), size)


def dead_leaves(rng: np.random.Generator, size: int = SCENE_SIZE, n_discs: int = 12000,
                r_min: float = 2.0, r_max: float = 120.0) -> np.ndarray:
    """A "dead leaves" scene: opaque discs with power-law radii (density ~ 1/r^3), uint8 sRGB.

    Colours are drawn uniformly in sRGB with a random per-disc brightness so the histogram spans
    deep shadows to highlights, and a smooth random gradient is added as illumination.
    """
    img = np.empty((size, size, 3), dtype=np.float64)
    img[:] = rng.uniform(0, 255, 3)
    yy, xx = np.mgrid[0:size, 0:size]
    # inverse-CDF sampling of p(r) ~ r^-3 on [r_min, r_max]
    u = rng.uniform(size=n_discs)
    radii = (r_min**-2 - u * (r_min**-2 - r_max**-2)) ** -0.5
    for r in radii:
        cy, cx = rng.uniform(-r, size + r, 2)
        colour = rng.uniform(0, 255, 3) * rng.uniform(0.2, 1.0)
        y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 2, size)
        x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 2, size)
        if y0 >= y1 or x0 >= x1:
            continue
        m = (yy[y0:y1, x0:x1] - cy) ** 2 + (xx[y0:y1, x0:x1] - cx) ** 2 <= r * r
        img[y0:y1, x0:x1][m] = colour
    gy, gx = rng.uniform(-0.5, 0.5, 2)
    illum = 1.0 + gy * (yy / size - 0.5) + gx * (xx / size - 0.5)
    return np.clip(np.rint(img * illum[..., None]), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class GeneratedPair:
    """File names of one generated pair, relative to the split directory."""

    short: str
    long: str
    scene_id: int
    exposure_s: float


def exposure_name(seconds: float) -> str:
    """SID's spelling of an exposure time in file names: 0.1 -> '0.1', 10.0 -> '10'."""
    return f"{seconds:g}"


def write_scene(out_dir: Path, scene_id: int, srgb_u8: np.ndarray, cfa: str = "RGGB",
                black_levels: tuple[int, int, int, int] | None = None,
                exposures_s: tuple[float, ...] = SHORT_EXPOSURES_S) -> list[GeneratedPair]:
    """Unprocess one scene and write its long DNG and a short DNG per exposure, SID-style names.

    Layout: ``long/<id>_00_10s.dng`` and ``short/<id>_00_<t>s.dng`` for t in ``exposures_s``
    (default 0.1, 0.04, 0.033). The noise seed of a short exposure is its index in
    :data:`SHORT_EXPOSURES_S`, so a subset draws the same noise as the full set would.
    """
    blacks = black_levels or (BLACK_LEVEL,) * 4
    cam = unprocess(srgb_u8)
    long_dn = long_exposure_dn(mosaic(cam, cfa))
    dng_kwargs = dict(cfa=cfa, black_levels=blacks, white_level=WHITE_LEVEL,
                      xyz_to_camera=XYZ_TO_CAMERA.ravel(), as_shot_neutral=as_shot_neutral())
    long_rel = f"long/{scene_id:05d}_00_{exposure_name(LONG_EXPOSURE_S)}s.dng"
    write_dng(out_dir / long_rel, long_dn, **dng_kwargs)
    pairs = []
    for t in exposures_s:
        k = SHORT_EXPOSURES_S.index(t)
        rng = np.random.default_rng(np.random.SeedSequence([TASK_SEED, scene_id, k]))
        short_dn = short_exposure_dn(long_dn, LONG_EXPOSURE_S / t, rng)
        short_rel = f"short/{scene_id:05d}_00_{exposure_name(t)}s.dng"
        write_dng(out_dir / short_rel, short_dn, **dng_kwargs)
        pairs.append(GeneratedPair(short_rel, long_rel, scene_id, t))
    return pairs


def generate_test_split(out_dir: str | Path) -> list[GeneratedPair]:
    """Write the ``synth`` test split (7 natural scenes x 3 exposures) into ``out_dir``."""
    out = Path(out_dir)
    pairs: list[GeneratedPair] = []
    for name, scene_id in TEST_SCENES:
        pairs += write_scene(out, scene_id, test_scene(name))
    return pairs


def full_frame_scene(name: str, frame: tuple[int, int] = FULL_FRAME) -> np.ndarray:
    """A natural photo from ``skimage.data``, centre-cropped to the frame's aspect and resampled
    (bilinear) to ``frame`` (rows, columns): uint8 sRGB."""
    import skimage.data
    from skimage.transform import resize

    img = getattr(skimage.data, name)()[..., :3]
    h, w = img.shape[:2]
    rows, cols = frame
    if h * cols > w * rows:  # too tall: crop rows
        ch, cw = w * rows // cols, w
    else:
        ch, cw = h, h * cols // rows
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    out = resize(img[y0:y0 + ch, x0:x0 + cw], frame, order=1, anti_aliasing=False,
                 preserve_range=True)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def generate_full_scene(out_dir: str | Path, name: str, scene_id: int) -> list[GeneratedPair]:
    """Write one ``synth-full`` scene: a full Sony frame (2848 x 4256 raw) long DNG and its
    short DNGs at :data:`FULL_SHORT_EXPOSURES_S`."""
    return write_scene(Path(out_dir), scene_id, full_frame_scene(name),
                       exposures_s=FULL_SHORT_EXPOSURES_S)


def generate_full_split(out_dir: str | Path) -> list[GeneratedPair]:
    """Write the ``synth-full`` split (every :data:`FULL_SCENES` scene) into ``out_dir``."""
    pairs: list[GeneratedPair] = []
    for name, scene_id in FULL_SCENES:
        pairs += generate_full_scene(out_dir, name, scene_id)
    return pairs


def train_scene_ids(n_scenes: int) -> Iterator[int]:
    """Scene ids of the ``synth-train`` split."""
    return iter(range(TRAIN_SCENE_ID_BASE + 1, TRAIN_SCENE_ID_BASE + 1 + n_scenes))


def generate_train_scene(out_dir: str | Path, scene_id: int) -> list[GeneratedPair]:
    """Write one ``synth-train`` dead-leaves scene (seeded by its id) and its three shorts."""
    rng = np.random.default_rng(np.random.SeedSequence([TASK_SEED, scene_id, 99]))
    return write_scene(Path(out_dir), scene_id, dead_leaves(rng))
