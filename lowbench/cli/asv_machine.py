"""`lowbench asv-machine`: describe this machine to asv with every field filled in.

``asv machine --yes --machine NAME`` (asv 0.6) stores only the fields that differ from its
detected defaults, so a named machine's results carry no cpu, cores or OS. lowbench saves the
full description through asv's own ``MachineCollection.save`` (into ``~/.asv-machine.json``),
filled from the same probes its records use, so asv rows and evaluate rows of one machine get
one machine_id.
"""

from __future__ import annotations

import argparse
import json
import os
import platform

from lowbench.errors import LowbenchError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of `lowbench asv-machine` to ``parser``."""
    parser.add_argument("--name", default=None, help="asv machine name (default: the hostname)")


def machine_description(name: str) -> dict[str, str]:
    """asv's machine fields for this machine (strings; RAM in bytes, as asv detects it), and
    lowbench's ``isa`` (the ISA features, space-separated: asv keeps the extra field, and
    lowbench reads it back so that asv and evaluate rows of one machine share one id)."""
    from lowbench.environment import cpu_isa, cpu_model, jetson_info, meminfo_mib

    ram_bytes = int(round(meminfo_mib().get("MemTotal", 0) * 1024)) * 1024
    cpu = cpu_model()
    jet = jetson_info()
    if jet and jet.get("model"):
        cpu = f"{cpu} ({jet['model']})"
    return {"machine": name, "os": f"{platform.system()} {platform.release()}",
            "arch": platform.machine(), "cpu": cpu, "num_cpu": str(os.cpu_count() or 1),
            "ram": str(ram_bytes), "isa": " ".join(cpu_isa()[0])}


def run(args: argparse.Namespace) -> int:
    """Save this machine's full description for asv under ``--name``; prints it. Exit code 0."""
    name = args.name or platform.node() or "machine"
    if any(c in name for c in "/\\") or name.startswith("."):
        raise LowbenchError(f"asv machine name {name!r} must not contain '/' or start with "
                            "'.'; pass --name with a plain name")
    from asv.machine import MachineCollection

    desc = machine_description(name)
    MachineCollection.save(name, desc)
    print(json.dumps(desc, indent=1))
    return 0
