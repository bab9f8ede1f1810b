"""The gallery: for each fixed test crop, the amplified input, every variant's output (latest
commit of each task x machine) and the ground truth, side by side.

PNG files are copied byte for byte (never re-encoded) to ``img/<sha256 prefix>.png``, each
written atomically (:func:`lowbench.fsutil.atomic_write_bytes`): identical crops are stored once
and names do not depend on where the results lived. A path that leaves its
results folder, a missing file or a file that is not a PNG is skipped with a warning.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lowbench.digest import bytes_digest
from lowbench.fsutil import atomic_write_bytes
from lowbench.site.model import Latest, variant_of

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class GalleryWarning(UserWarning):
    """A gallery image could not be used."""


@dataclass
class Output:
    """One variant's output crop."""

    variant: str
    variant_href: str
    src: str | None


@dataclass
class Crop:
    """One test crop of a task: input, truth and every variant's output, per machine label."""

    pair: str
    ratio: str
    input: str | None = None
    truth: str | None = None
    machines: dict[str, list[Output]] = field(default_factory=dict)


class ImageStore:
    """Copies PNGs into ``<site>/img`` by content digest (each source read once)."""

    def __init__(self, site: Path) -> None:
        self.site = site
        self._done: dict[Path, str | None] = {}

    def add(self, root: str, rel: str | None) -> str | None:
        """Copy ``root/rel`` into the site; its site-relative path, or None if unusable."""
        if not rel:
            return None
        base = Path(root).resolve()
        src = (base / rel).resolve()
        if src in self._done:
            return self._done[src]
        result = None
        if not src.is_relative_to(base):
            warnings.warn(f"gallery path leaves its results folder: {rel}", GalleryWarning,
                          stacklevel=2)
        else:
            try:
                data = src.read_bytes()
            except OSError as exc:
                warnings.warn(f"gallery image unreadable: {rel}: {exc.strerror}", GalleryWarning,
                              stacklevel=2)
            else:
                if not data.startswith(PNG_SIGNATURE):
                    warnings.warn(f"gallery image is not a PNG: {rel}", GalleryWarning,
                                  stacklevel=2)
                else:
                    result = f"img/{bytes_digest(data, 24)}.png"
                    dest = self.site / result
                    if not dest.exists():  # atomic: a killed build leaves no partial PNG
                        atomic_write_bytes(dest, data)
        self._done[src] = result
        return result


def build_gallery(latests: list[Latest], store: ImageStore, variant_href: dict[Any, str]
                  ) -> dict[str, list[Crop]]:
    """task -> crops (sorted by pair), from the latest rows of every table.

    ``variant_href`` maps (Table.key, Variant) to the variant page (site-relative)."""
    out: dict[str, dict[str, Crop]] = {}
    for lt in latests:
        for row in lt.rows:
            if row.get("status") != "ok":
                continue
            v = variant_of(row)
            for item in row.get("gallery") or []:
                pair = str(item.get("pair"))
                crops = out.setdefault(lt.table.task_label, {})
                crop = crops.get(pair)
                if crop is None:
                    crop = crops[pair] = Crop(pair, str(item.get("ratio") or ""))
                root = row["results_root"]
                if crop.input is None:
                    crop.input = store.add(root, item.get("input"))
                if crop.truth is None:
                    crop.truth = store.add(root, item.get("truth"))
                machine = f"{lt.table.machine} ({lt.table.machine_id})"
                crop.machines.setdefault(machine, []).append(Output(
                    v.label, variant_href[(lt.table.key, v)],
                    store.add(root, item.get("output"))))
    return {task: [crops[p] for p in sorted(crops)] for task, crops in sorted(out.items())}
