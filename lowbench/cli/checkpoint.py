"""`lowbench checkpoint convert`: the original SID project's .pth checkpoints to lowbench
safetensors; the work is :func:`lowbench.convert.convert_checkpoint`."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the actions of `lowbench checkpoint` and their options to ``parser``."""
    csub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = csub.add_parser("convert", help="original SID .pth state dict -> lowbench .safetensors "
                                        "(read with torch.load(weights_only=True) only)")
    c.add_argument("file", metavar="FILE.pth", help="SeeInDark, Light_SeeInDark, "
                   "Lighter_SeeInDark or Light_SeeInDark_Rewrite state dict")
    c.add_argument("--out", required=True, metavar="FILE.safetensors", help="output checkpoint")
    c.add_argument("--model", default=None,
                   help="lowbench model the weights are for (default: detected from the keys)")


def run(args: argparse.Namespace) -> int:
    """`lowbench checkpoint convert FILE --out FILE.safetensors [--model M]`: convert, print one
    line naming the written file and how to evaluate it. Exit code 0."""
    from lowbench.convert import convert_checkpoint

    done = convert_checkpoint(args.file, args.out, args.model)
    print(f"wrote {done.out} (lowbench '{done.model}' from {done.source_architecture}, "
          f"{done.params:,} parameters, source sha256 {done.source_sha256[:12]}); evaluate it "
          f"with: lowbench evaluate --model {done.model} --checkpoint {done.out}")
    return 0
