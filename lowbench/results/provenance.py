"""What a record says about where its inputs came from, without naming the machine's paths:
the machine (by a digest of its hardware, :func:`machine_id`), the task (its pair count, from the
installed task where a record predates ``pairs_total``) and the checkpoint.

A result record is published and read on other machines: it names a shipped checkpoint by its
package-relative name (``lowbench/checkpoints/light.safetensors``), a user's checkpoint by its
file name, and both by sha256; ``reference`` says whether the weights are the shipped ones (by
digest, so a copy of the shipped file is the reference too). Absolute paths in the command line
and in the calibration section are reduced the same way.
"""

from __future__ import annotations

import copy
import os
import shlex
from functools import lru_cache
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from lowbench.digest import json_digest, sha256_file
from lowbench.paths import PACKAGE_DIR

#: Where the shipped checkpoints live, and how a record names them (package-relative).
SHIPPED_CHECKPOINT_DIR = PACKAGE_DIR / "checkpoints"
SHIPPED_NAME_PREFIX = "lowbench/checkpoints/"


@lru_cache(maxsize=1)
def shipped_digests() -> frozenset[str]:
    """sha256 of every checkpoint this install ships (float and QAT), hashed once per process."""
    return frozenset(sha256_file(p) for p in sorted(SHIPPED_CHECKPOINT_DIR.glob("*.safetensors")))


def machine_id(machine: dict[str, Any]) -> str:
    """A short stable digest (12 hex) of the fields that identify a machine (not its hostname):
    two machines never share a row, and asv results of the same hardware get the same id.

    The ISA features (``isa``, see :func:`lowbench.environment.cpu_isa`) count where the
    description lists some, so two VMs with the same CPU string, one with AVX-512 and one
    without, are two machines; a description without them (every record before they were
    recorded, or an empty list) keeps the id it always had."""
    jet = machine.get("jetson")
    if not isinstance(jet, dict):
        jet = {}
    isa = machine.get("isa")
    fields = (*(machine.get(k) for k in ("cpu", "arch", "cores", "ram_mib", "accelerator")),
              *(jet.get(k) for k in ("model", "l4t_release", "nvpmodel")),
              machine.get("hostname_label"),
              tuple(sorted(map(str, isa))) if isinstance(isa, list) and isa else None)
    try:
        return _machine_digest(fields)  # memoized: 200,000 records come from a few machines
    except TypeError:  # an unhashable field (a list or dict): compute it afresh
        return _machine_digest.__wrapped__(fields)


@lru_cache(maxsize=1024)
def _machine_digest(fields: tuple) -> str:
    cpu, arch, cores, ram_mib, accelerator, model, l4t_release, nvpmodel, label, isa = fields
    ident = {"cpu": cpu, "arch": arch, "cores": cores, "ram_mib": ram_mib,
             "accelerator": accelerator,
             "jetson": {"model": model, "l4t_release": l4t_release, "nvpmodel": nvpmodel},
             "label": label}
    if isa is not None:
        ident["isa"] = list(isa)
    return json_digest(ident, 12)


def checkpoint_is_reference(ckpt: dict[str, Any] | None) -> bool:
    """Whether a record's ``variant.checkpoint`` is the shipped (reference) weights: its own
    ``reference`` flag; for records written before it existed, ``source == "shipped"`` or a digest
    equal to a checkpoint this install ships. No checkpoint at all (LibRaw) is the reference."""
    if not isinstance(ckpt, dict) or not ckpt.get("sha256"):
        return True
    if isinstance(ckpt.get("reference"), bool):
        return ckpt["reference"]
    if ckpt.get("source") == "shipped":
        return True
    return ckpt["sha256"] in shipped_digests()


@lru_cache(maxsize=256)
def _task_total(name: str, version: int | None, manifest_sha256: str | None) -> int | None:
    """Pair count of an installed task with this name, version and manifest digest (None when
    this install has no such task: the count is then unknown)."""
    from lowbench.tasks import get_task  # tasks reads raw files: only when a record needs it

    try:
        task = get_task(name)
    except Exception:  # noqa: BLE001 - unknown task, unreadable manifest: the count is unknown
        return None
    if task.version != version or task.fingerprint()["manifest_sha256"] != manifest_sha256:
        return None
    return len(task.listed())


def pairs_total_of(task: dict[str, Any]) -> int | None:
    """The task's total pair count of a record's ``task`` section: ``pairs_total`` if recorded,
    else derived from the installed task of the same name, version and digest (None: unknown)."""
    total = task.get("pairs_total")
    if isinstance(total, int) and not isinstance(total, bool):
        return total
    name, digest = task.get("name"), task.get("manifest_sha256")
    if not isinstance(name, str) or not isinstance(digest, (str, type(None))):
        return None
    version = task.get("version")
    return _task_total(name, version if isinstance(version, int) else None, digest)


def is_absolute(text: str) -> bool:
    """Whether ``text`` is an absolute POSIX or Windows path (``/x``, ``C:\\x``, UNC)."""
    return PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute()


def _name(text: str) -> str:
    """The last component of a POSIX or Windows path."""
    return PureWindowsPath(text).name if "\\" in text else PurePosixPath(text).name


def portable_path(path: str | os.PathLike[str]) -> str:
    """A path as a record may hold it: relative to the package's parent when inside lowbench
    (``lowbench/checkpoints/light.safetensors``), else relative to the working directory when
    inside it, else only its file name. Relative paths are kept as they are."""
    text = os.fspath(path)
    if not is_absolute(text):
        return text
    p = Path(text)
    for base in (PACKAGE_DIR.parent, Path.cwd()):
        try:
            return p.resolve().relative_to(base.resolve()).as_posix()
        except (ValueError, OSError):
            continue
    return _name(text)


def portable_command(argv: list[str]) -> list[str]:
    """``argv`` with every absolute path (also in ``--opt=/path``) reduced by
    :func:`portable_path`."""
    out = []
    for arg in argv:
        opt, eq, value = arg.partition("=")
        if eq and opt.startswith("-") and is_absolute(value):
            out.append(f"{opt}={portable_path(value)}")
        else:
            out.append(portable_path(arg) if is_absolute(arg) else arg)
    return out


def checkpoint_identity(path: str | os.PathLike[str] | None, sha256: str | None,
                        source: str | None) -> dict[str, Any]:
    """The record's ``variant.checkpoint``: ``name`` (package-relative for a shipped file, else
    the file name), ``sha256``, ``source`` ("shipped" | "user" | None) and ``reference`` (the
    weights are those this install ships, by digest; no weights at all, LibRaw, is the
    reference)."""
    if path is None:
        return {"name": None, "sha256": sha256, "source": source, "reference": sha256 is None}
    text = os.fspath(path)
    name = f"{SHIPPED_NAME_PREFIX}{_name(text)}" if source == "shipped" else _name(text)
    reference = sha256 is not None and sha256 in shipped_digests()
    return {"name": name, "sha256": sha256, "source": source, "reference": reference}


def portable_calibration(calibration: dict[str, Any] | None) -> dict[str, Any] | None:
    """The calibration section with its cache file named by file name only (the cache folder is
    the machine's own)."""
    if not isinstance(calibration, dict):
        return calibration
    out = dict(calibration)
    cache = out.get("cache_file")
    if isinstance(cache, str) and is_absolute(cache):
        out["cache_file"] = _name(cache)
    return out


def migrate_record(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` (a copy) as the harness writes it now: ``task.pairs_total`` and ``task.crop``
    added where the installed task of the same name, version and digest says them; the checkpoint
    by name + sha256 + ``reference`` (records of the shipped weights stay the reference even where
    the shipped file has changed since); no absolute path in the calibration cache file or the
    command line. Figures are untouched; a migrated record migrates to itself."""
    rec = copy.deepcopy(record)
    task = rec.get("task") or {}
    if "pairs_total" not in task:
        total = pairs_total_of(task)
        if total is not None:
            task["pairs_total"] = total
            task.setdefault("crop", _installed_crop(task))
    variant = rec.get("variant") or {}
    ckpt = variant.get("checkpoint")
    if isinstance(ckpt, dict) and "path" in ckpt:
        new = checkpoint_identity(ckpt["path"], ckpt.get("sha256"), ckpt.get("source"))
        new["reference"] = checkpoint_is_reference(ckpt)
        variant["checkpoint"] = new
    if "calibration" in variant:
        variant["calibration"] = portable_calibration(variant["calibration"])
    env = rec.get("environment") or {}
    command = env.get("command")
    if isinstance(command, str):
        try:
            argv = shlex.split(command)
        except ValueError:
            argv = command.split()
        if any(is_absolute(a) or is_absolute(a.partition("=")[2]) for a in argv):
            env["command"] = shlex.join(portable_command(argv))
    return rec


def _installed_crop(task: dict[str, Any]) -> int | None:
    """The crop (raw pixels, None: full frame) of the installed task a record's ``task`` section
    names (same name, version and digest: checked by the caller through ``pairs_total_of``)."""
    from lowbench.tasks import get_task

    return get_task(task["name"]).crop
