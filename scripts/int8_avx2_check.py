"""Does int8 quality change on x86 CPUs without VNNI? Forces the AVX2 kernels and compares.

    python scripts/int8_avx2_check.py [--models light lighter fire sid] [--quants static qat]

On x86 the int8 kernels of CPUs without VNNI sum u8 x s8 products pairwise in 16 bits, which
can saturate for activations above 127 steps; lowbench's 7-bit activation scales leave that
headroom to values beyond the calibrated range (lowbench/quant/qat.py). On a CPU with
VNNI this script runs each variant's synth quality twice in child processes: with the
machine's own kernels, and with FBGEMM and oneDNN forced to AVX2 (``FBGEMM_ENABLE_INSTRUCTIONS``,
``ONEDNN_MAX_CPU_ISA``, ``ATEN_CPU_CAPABILITY``), and prints both PSNRs (dB) and their
difference. On a CPU without VNNI both runs already use AVX2 kernels and the difference is 0.
``ONEDNN_VERBOSE=1`` shows the switch: on the reference Xeon lighter's int8 convolutions run
``brgconv_1x1:avx10_1_512_amx`` and ``brdgmm_dw:avx512_core_vnni`` natively, and
``jit_uni_int8_1x1:avx2`` and ``jit_uni_int8:avx2`` forced.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from lowbench.models.registry import LEARNED_MODELS

#: Environment that makes FBGEMM, oneDNN and ATen dispatch their AVX2 (pre-VNNI) kernels.
AVX2_ENV = {"FBGEMM_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
            "ATEN_CPU_CAPABILITY": "avx2"}


def child(model: str, quant: str) -> None:
    """Print the variant's synth PSNR (dB) and the ATen CPU capability as one JSON line."""
    import torch

    from lowbench.harness.session import EvalConfig, Session

    session = Session(EvalConfig(model=model, quant=quant, memory=False, energy=False,
                                 gallery=False))
    quality = session.run_quality()["quality"]
    print(json.dumps({"psnr_db": quality["psnr_db"],
                      "capability": torch.backends.cpu.get_cpu_capability()}))


def run(model: str, quant: str, extra_env: dict[str, str]) -> dict[str, object]:
    """Run :func:`child` in a fresh interpreter with ``extra_env``; its JSON result."""
    done = subprocess.run([sys.executable, __file__, "--child", model, quant],
                          env={**os.environ, **extra_env}, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    """Print native vs forced-AVX2 synth PSNR (dB) for each model x int8 variant."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(LEARNED_MODELS), choices=LEARNED_MODELS)
    ap.add_argument("--quants", nargs="+", default=["static", "qat"], choices=["static", "qat"])
    ap.add_argument("--child", nargs=2, metavar=("MODEL", "QUANT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return 0
    print("| model | quant | native PSNR dB | AVX2 PSNR dB | AVX2 - native dB |")
    print("|---|---|---:|---:|---:|")
    for model in args.models:
        for quant in args.quants:
            native, avx2 = run(model, quant, {}), run(model, quant, AVX2_ENV)
            print(f"| {model} | {quant} | {native['psnr_db']:.4f} ({native['capability']}) | "
                  f"{avx2['psnr_db']:.4f} ({avx2['capability']}) | "
                  f"{avx2['psnr_db'] - native['psnr_db']:+.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
