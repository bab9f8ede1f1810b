"""The machine's ISA features (issue 20): read from real /proc/cpuinfo text of x86 and aarch64
machines (tests/fixtures/cpuinfo), recorded as ``environment.machine.isa``, and part of the
machine id and label only where a record lists some, so older records keep theirs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from site_fixtures import make_record

from lowbench.environment import cpu_isa, isa_from_cpuinfo, machine_label
from lowbench.results.provenance import machine_id
from lowbench.results.records import validate
from lowbench.results.table import row_from_record

CPUINFO = Path(__file__).parent / "fixtures" / "cpuinfo"


@pytest.mark.parametrize(("fixture", "arch", "expected"), [
    ("x86_epyc_milan_avx2.txt", "x86_64", ["avx2"]),
    ("x86_epyc_genoa_avx512.txt", "x86_64", ["avx2", "avx512_bf16", "avx512_vnni", "avx512f"]),
    ("x86_xeon_sapphire_rapids_amx.txt", "x86_64",
     ["amx_bf16", "amx_int8", "amx_tile", "avx2", "avx512_bf16", "avx512_vnni", "avx512f",
      "avx_vnni"]),
    # svei8mm and svebf16 are other features than i8mm and bf16: whole names only
    ("aarch64_graviton3.txt", "aarch64", ["asimd", "asimddp", "bf16", "i8mm", "sve"]),
    ("aarch64_rpi5_cortex_a76.txt", "aarch64", ["asimd", "asimddp"]),
])
def test_isa_from_real_cpuinfo(fixture: str, arch: str, expected: list[str]) -> None:
    text = (CPUINFO / fixture).read_text()
    assert isa_from_cpuinfo(text, arch) == expected
    isa, why = cpu_isa(CPUINFO / fixture, system="Linux", arch=arch)
    assert (isa, why) == (expected, None)


def test_isa_of_the_other_architecture_is_not_read() -> None:
    """x86 flags on an aarch64 machine (and the reverse) name nothing: each arch its own list."""
    x86 = (CPUINFO / "x86_xeon_sapphire_rapids_amx.txt").read_text()
    arm = (CPUINFO / "aarch64_graviton3.txt").read_text()
    assert isa_from_cpuinfo(x86, "aarch64") == []
    assert isa_from_cpuinfo(arm, "x86_64") == []
    assert isa_from_cpuinfo(x86, "AMD64") == isa_from_cpuinfo(x86, "x86_64")


def test_a_feature_only_some_processors_have_is_not_listed() -> None:
    """The features every processor lists (a heterogeneous or misreported core drops one)."""
    text = (CPUINFO / "x86_epyc_genoa_avx512.txt").read_text()
    first, second = text.split("\n\n", 1)
    assert isa_from_cpuinfo(first + "\n\n" + second.replace(" avx512f ", " "), "x86_64") == [
        "avx2", "avx512_bf16", "avx512_vnni"]


def test_isa_aliases() -> None:
    assert isa_from_cpuinfo("flags\t: sse avx2 avx512vnni avxvnni\n", "x86_64") == [
        "avx2", "avx512_vnni", "avx_vnni"]


def test_no_isa_elsewhere_with_a_reason(tmp_path: Path) -> None:
    for system, arch, words in (("Darwin", "arm64", "Darwin"), ("Windows", "AMD64", "Windows"),
                                ("Linux", "riscv64", "riscv64")):
        isa, why = cpu_isa(CPUINFO / "aarch64_graviton3.txt", system=system, arch=arch)
        assert isa == [] and words in why
    isa, why = cpu_isa(tmp_path / "absent", system="Linux", arch="x86_64")
    assert isa == [] and "unreadable" in why
    plain = tmp_path / "cpuinfo"
    plain.write_text("processor\t: 0\nflags\t\t: fpu sse sse2\n\n")
    isa, why = cpu_isa(plain, system="Linux", arch="x86_64")
    assert isa == [] and "avx2" in why


def _record(isa: list[str] | None) -> dict:
    rec = make_record(machine=4)
    if isa is not None:
        rec["environment"]["machine"]["isa"] = isa
    return rec


def test_isa_tells_two_machines_apart_and_old_records_keep_their_id() -> None:
    old, avx2, avx512 = _record(None), _record(["avx2"]), _record(["avx2", "avx512f"])
    ids = {machine_id(r["environment"]["machine"]) for r in (old, avx2, avx512)}
    assert len(ids) == 3
    # an empty list (nothing of note, or not Linux) is the id without the field
    assert machine_id(_record([])["environment"]["machine"]) == machine_id(
        old["environment"]["machine"])
    # the order a record lists them in does not matter
    assert machine_id(_record(["avx512f", "avx2"])["environment"]["machine"]) == machine_id(
        avx512["environment"]["machine"])
    for rec in (old, avx2, avx512):
        validate(rec)
        assert row_from_record(rec)["machine_id"] == machine_id(rec["environment"]["machine"])


def test_published_ids_are_unchanged() -> None:
    """The digest of a description without ``isa`` is the one published before issue 20
    (results/: the AMD EPYC of the README's screenshot)."""
    machine = {"accelerator": None, "arch": "x86_64", "cores": 2, "cpu": "AMD EPYC",
               "hostname_label": None, "jetson": None,
               "os": "Linux-6.18.44-fc-v1252-x86_64-with-glibc2.36", "ram_mib": 24105.3,
               "swap_mib": 0.0}
    assert machine_id(machine) == "09c6abd87c6c"
    assert machine_id({**machine, "isa": ["avx2", "avx512f"]}) != "09c6abd87c6c"


def test_label_names_the_isa_only_when_recorded() -> None:
    m = _record(None)["environment"]["machine"]
    assert machine_label(m) == "11th Gen Intel(R) Core(TM) i5-1135G7, 8 cores"
    assert machine_label({**m, "isa": []}) == machine_label(m)
    assert machine_label({**m, "isa": ["avx2", "avx512f"]}) == (
        "11th Gen Intel(R) Core(TM) i5-1135G7, 8 cores, avx2 avx512f")


def test_schema_rejects_a_malformed_isa() -> None:
    rec = copy.deepcopy(_record(None))
    rec["environment"]["machine"]["isa"] = "avx2 avx512f"
    with pytest.raises(Exception, match="isa"):
        validate(rec)


def test_asv_and_evaluate_rows_of_this_machine_share_one_id(monkeypatch) -> None:
    """`lowbench asv-machine` writes the ISA features into asv's machine.json, and asv rows read
    them back: this machine's asv and evaluate rows are one machine (as before issue 20)."""
    from lowbench.cli.asv_machine import machine_description
    from lowbench.environment import machine_info
    from lowbench.results.asv import machine_from_asv

    monkeypatch.delenv("LOWBENCH_MACHINE", raising=False)
    desc = machine_description("here")
    here = machine_info()
    assert desc["isa"] == " ".join(here["isa"])
    assert machine_id(machine_from_asv(desc)) == machine_id(here)
    assert machine_label(machine_from_asv(desc)) == machine_label(here)
    # an asv machine.json from before (no isa) keeps its id
    old = {k: v for k, v in desc.items() if k != "isa"}
    assert "isa" not in machine_from_asv(old)
