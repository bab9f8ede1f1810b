"""Reading a device's ``result.tar`` and checking it against its bundle: the manifest's sha256,
every artifact's, input's and output's, the protocol the device ran and that an "ok" variant
holds every pair. The archive is read in memory (no member is ever extracted to a path), and
only the members its result.json names are read; anything else is one :class:`ArchiveError`
line.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from lowbench.digest import bytes_digest, sha256_file
from lowbench.errors import DataError

#: Result archive formats this lowbench reads (run.py's ``runner_version``).
RUNNER_VERSIONS = (1,)
#: Largest member read from an archive (bytes): a 4K frame's float16 output is ~50 MB.
MAX_MEMBER_BYTES = 512 * 2**20
class ArchiveError(DataError):
    """A result archive that is damaged, foreign or does not match its bundle."""


def _member(tar: tarfile.TarFile, name: str, archive: Path) -> bytes:
    """The bytes of regular-file member ``name`` (never extracted to disk)."""
    try:
        info = tar.getmember(name)
    except KeyError:
        raise ArchiveError(f"{archive} has no {name}; copy result.tar from the device again "
                           "(a partial copy?)") from None
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ArchiveError(f"{archive} is damaged ({err}); copy result.tar from the device "
                           "again (a partial copy?)") from None
    if not info.isfile() or info.size > MAX_MEMBER_BYTES:
        raise ArchiveError(f"{archive}: member {name} is not a regular file of at most "
                           f"{MAX_MEMBER_BYTES >> 20} MiB; this is not run.py's archive")
    try:
        handle = tar.extractfile(info)
        assert handle is not None
        return handle.read()
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ArchiveError(f"{archive}: {name} is cut short ({err}); copy result.tar from the "
                           "device again") from None


def _find_manifest(result: dict[str, Any], bundle: Path | None, archive: Path
                   ) -> tuple[dict[str, Any], str]:
    """The bundle manifest the archive was made from (``bundle``'s, else the register's by
    the archive's bundle id) and its sha256, which must equal the archive's."""
    from lowbench.bundle.make import bundle_register

    bid = str(result.get("bundle_id") or "")
    if bundle is not None:
        path = Path(bundle) / "manifest.json" if Path(bundle).is_dir() else Path(bundle)
    else:
        path = bundle_register() / bid / "manifest.json"
    if not re.fullmatch(r"[0-9a-f]{32}", bid):
        raise ArchiveError(f"{archive}: result.json names no bundle id; this is not run.py's "
                           "archive")
    if not path.is_file():
        raise ArchiveError(f"{archive} was made from bundle {bid}, which is not in "
                           f"{path.parent}; pass --bundle DIR (the bundle folder made by "
                           "`lowbench bundle`)")
    digest = sha256_file(path)
    if digest != result.get("manifest_sha256"):
        raise ArchiveError(f"{archive} was run from a manifest.json that differs from {path} "
                           "(sha256); ingest it with the bundle it was made from")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("bundle_id") != bid:
        raise ArchiveError(f"{path} is bundle {manifest.get('bundle_id')}, but {archive} was "
                           f"made from bundle {bid}; pass that bundle's folder")
    return manifest, digest


def read_archive(archive: Path, bundle: Path | None = None
                 ) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """(result.json, manifest, {variant id: {pair id: output image}}) of ``archive``, every
    digest checked; :class:`ArchiveError` naming what does not match."""
    archive = Path(archive)
    if not archive.is_file():
        raise DataError(f"{archive} does not exist; give the result.tar that run.py wrote")
    try:
        tar = tarfile.open(archive, "r:")
    except (tarfile.TarError, OSError) as err:
        raise ArchiveError(f"{archive} is not a tar archive ({err}); give the result.tar "
                           "that run.py wrote") from None
    with tar:
        try:
            result = json.loads(_member(tar, "result.json", archive).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise ArchiveError(f"{archive}: result.json is not JSON ({err})") from None
        if not isinstance(result, dict) or result.get("schema") != "lowbench.bundle-result":
            raise ArchiveError(f"{archive} is not a lowbench device result (result.json's "
                               "schema); give the result.tar that run.py wrote")
        if result.get("runner_version") not in RUNNER_VERSIONS:
            raise ArchiveError(f"{archive} was written by run.py version "
                               f"{result.get('runner_version')}; this lowbench reads "
                               f"{RUNNER_VERSIONS}: upgrade lowbench")
        manifest, _ = _find_manifest(result, bundle, archive)
        used = dict(result.get("protocol_used") or {})
        planned = dict(manifest["protocol"])
        used.pop("budget_s", None), planned.pop("budget_s", None)  # run.py --latency-budget
        if used != planned:
            raise ArchiveError(f"{archive}: the device ran another protocol than the bundle's "
                               "(result.json's protocol_used); run the bundle's run.py unchanged")
        by_id = {v["id"]: v for v in manifest["variants"]}
        inputs = {p["pair"]: p for p in manifest["pairs"]}
        outputs: dict[str, dict[str, np.ndarray]] = {}
        for entry in result.get("variants", []):
            spec = by_id.get(entry.get("id"))
            if spec is None:
                raise ArchiveError(f"{archive}: variant {entry.get('id')!r} is not in the "
                                   "bundle")
            if entry.get("status") == "ok" and entry.get("artifact_sha256") != \
                    spec["artifact"]["sha256"]:
                raise ArchiveError(f"{archive}: variant {spec['id']} ran an artifact whose "
                                   "sha256 differs from the bundle's")
            images = outputs.setdefault(spec["id"], {})
            if entry.get("status") == "ok" and [p.get("pair") for p in entry.get("pairs", [])] \
                    != [p["pair"] for p in manifest["pairs"]]:
                raise ArchiveError(f"{archive}: variant {spec['id']} is marked ok but does not "
                                   "hold an output for every pair of the bundle, in order")
            for pair in entry.get("pairs", []):
                expected = inputs.get(pair.get("pair"))
                if expected is None or pair.get("input_sha256") != expected["sha256"]:
                    raise ArchiveError(f"{archive}: {spec['id']} pair {pair.get('pair')!r} "
                                       "was run on an input that is not the bundle's")
                name = f"outputs/{spec['id']}/{expected['file_stem']}.npy"
                if pair.get("output") != name:
                    raise ArchiveError(f"{archive}: {spec['id']} names output "
                                       f"{pair.get('output')!r}, expected {name}")
                data = _member(tar, name, archive)
                if bytes_digest(data) != pair.get("output_sha256"):
                    raise ArchiveError(f"{archive}: {name} does not match its sha256 in "
                                       "result.json (damaged in transfer?); copy it again")
                try:
                    image = np.load(io.BytesIO(data), allow_pickle=False)
                except ValueError as err:
                    raise ArchiveError(f"{archive}: {name} is not a numpy array ({err})") \
                        from None
                h, w = expected["valid_hw"]
                want_dtype = np.uint8 if manifest["outputs"] == "uint8" else np.float16
                if image.shape != (2 * h, 2 * w, 3) or image.dtype != want_dtype:
                    raise ArchiveError(f"{archive}: {name} is {image.dtype} {image.shape}, "
                                       f"expected {np.dtype(want_dtype)} {(2 * h, 2 * w, 3)}")
                images[pair["pair"]] = image
    return result, manifest, outputs
