"""A minimal reader of TIFF-based raw files' directories (DNG, ARW, NEF, CR2, RW2, ORF...), without
LibRaw: the camera (IFD0 Make/Model) and where the image data declared by the directories ends,
so that a truncated file is named as such before LibRaw decodes it (``lowbench.raw``).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass


@dataclass(frozen=True)
class TiffInfo:
    """What a minimal walk of a TIFF-based raw's directories found (DNG, ARW, NEF, CR2, ...).

    ``make``/``model``: IFD0's Make and Model tags (None if absent); ``data_end``: the largest
    end offset (bytes) of any strip or tile the directories declare; ``size``: the file's size
    (bytes); ``broken``: why the directory structure itself points past the end of the file.
    """

    make: str | None
    model: str | None
    data_end: int
    size: int
    broken: str | None = None

    @property
    def camera(self) -> str | None:
        """'Make Model' as LibRaw reports cameras, e.g. 'Sony ILCE-7SM2' (None if unknown)."""
        names = [n for n in (self.make, self.model) if n]
        if not names:
            return None
        if self.make and self.model and self.model.lower().startswith(self.make.lower()):
            return self.model
        return " ".join(names)


_TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8,
                    13: 4, 16: 8, 17: 8, 18: 8}
_TIFF_INT_FORMATS = {3: "H", 4: "I", 13: "I", 16: "Q"}
_STRIP_OFFSETS, _STRIP_COUNTS, _TILE_OFFSETS, _TILE_COUNTS = 273, 279, 324, 325
_SUB_IFDS, _EXIF_IFD, _MAKE, _MODEL = 330, 34665, 271, 272
_WALKED_TAGS = (_STRIP_OFFSETS, _STRIP_COUNTS, _TILE_OFFSETS, _TILE_COUNTS, _SUB_IFDS, _EXIF_IFD)
_TIFF_MAGICS = (42, 0x55, 0x4F52, 0x5352)  # TIFF (DNG, ARW, NEF, CR2...), RW2, ORF
_HEAD_BYTES = 1 << 20  # every raw's directories sit in its first MiB in practice


class _TiffWalk:
    """One pass over a TIFF file's directories (see :func:`tiff_info`)."""

    def __init__(self, head: bytes, size: int) -> None:
        self.head, self.size = head, size
        self.order = "<" if head[:2] == b"II" else ">"
        self.make: str | None = None
        self.model: str | None = None
        self.data_end = 0
        self.broken: str | None = None

    def _bytes(self, entry: int, typ: int, count: int) -> bytes | None:
        """A tag's value bytes (inline or at its offset); None if unreadable."""
        n = _TIFF_TYPE_SIZES.get(typ, 1) * count
        if n <= 4:
            return self.head[entry + 8: entry + 8 + n]
        (offset,) = struct.unpack(self.order + "I", self.head[entry + 8: entry + 12])
        if offset + n > self.size:
            self.broken = f"a tag's value lies at bytes {offset}-{offset + n}"
            return None
        return self.head[offset: offset + n] if offset + n <= len(self.head) else None

    def _ints(self, entry: int, typ: int, count: int) -> list[int]:
        fmt = _TIFF_INT_FORMATS.get(typ)
        value = self._bytes(entry, typ, count) if fmt and count <= 100_000 else None
        return list(struct.unpack(self.order + fmt * count, value)) if fmt and value else []

    def walk(self, first: int) -> None:
        """Visit the IFD chain from ``first`` and every SubIFD / EXIF IFD it points to."""
        seen: set[int] = set()
        todo = [first]
        while todo and len(seen) < 64:
            ifd = todo.pop()
            if ifd == 0 or ifd in seen:
                continue
            seen.add(ifd)
            if ifd + 2 > self.size:
                self.broken = f"a directory starts at byte {ifd}"
                continue
            if ifd + 2 > len(self.head):
                continue
            (n_entries,) = struct.unpack(self.order + "H", self.head[ifd:ifd + 2])
            next_pos = ifd + 2 + 12 * n_entries
            if next_pos + 4 > self.size:
                self.broken = f"a directory ends at byte {next_pos + 4}"
                continue
            if next_pos + 4 > len(self.head):
                continue
            tags: dict[int, list[int]] = {}
            for entry in range(ifd + 2, next_pos, 12):
                tag, typ, count = struct.unpack(self.order + "HHI", self.head[entry:entry + 8])
                if tag in (_MAKE, _MODEL) and typ == 2 and ifd == first:
                    text = self._bytes(entry, typ, count) or b""
                    name = text.split(b"\0", 1)[0].decode("ascii", "replace").strip() or None
                    if tag == _MAKE:
                        self.make = name
                    else:
                        self.model = name
                elif tag in _WALKED_TAGS:
                    tags[tag] = self._ints(entry, typ, count)
            for offs_tag, counts_tag in ((_STRIP_OFFSETS, _STRIP_COUNTS),
                                         (_TILE_OFFSETS, _TILE_COUNTS)):
                offs, counts = tags.get(offs_tag, []), tags.get(counts_tag, [])
                if offs and len(offs) == len(counts):
                    ends = (o + c for o, c in zip(offs, counts, strict=True))
                    self.data_end = max(self.data_end, *ends)
            todo += tags.get(_SUB_IFDS, []) + tags.get(_EXIF_IFD, [])
            todo.append(struct.unpack(self.order + "I", self.head[next_pos:next_pos + 4])[0])


def tiff_info(path: str | os.PathLike[str]) -> TiffInfo | None:
    """Walk the TIFF directories of a raw file (IFD chain, SubIFDs, EXIF IFD) without LibRaw.

    Returns None for files that are not TIFF-based (e.g. RAF, CRW, X3F); never raises for a
    malformed file (what it cannot read it leaves out).
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD_BYTES)
            size = os.fstat(fh.fileno()).st_size
    except OSError:
        return None
    if len(head) < 8 or head[:2] not in (b"II", b"MM"):
        return None
    walk = _TiffWalk(head, size)
    magic, first = struct.unpack(walk.order + "HI", head[2:8])
    if magic not in _TIFF_MAGICS:
        return None
    try:
        walk.walk(first)
    except struct.error:  # a malformed directory: keep what was read
        pass
    return TiffInfo(walk.make, walk.model, walk.data_end, size, walk.broken)
