"""The Judge's data (issue 22): every gallery scene whose outputs two or more variants share,
each output named by its image's digest, and the build id that ties a vote to exactly these
pictures.

The gallery's PNGs are stored by content (``img/<sha256 prefix>.png``,
:class:`lowbench.site.gallery.ImageStore`), so an image path is its digest. The build id is the
digest of the whole manifest: the same results give the same id (the site is byte-identical),
other pictures give another. ``data/judge.json`` holds it; the Judge page and
``lowbench votes import`` (:mod:`lowbench.judge.votes`) read it.
"""

from __future__ import annotations

from typing import Any

from lowbench.digest import json_digest
from lowbench.judge.votes import JUDGE_FILE, JUDGE_SCHEMA, load_votes
from lowbench.site.gallery import Crop

__all__ = ["JUDGE_FILE", "judge_context", "judge_manifest"]


def judge_manifest(gallery: dict[str, list[Crop]]) -> dict[str, Any]:
    """``{"schema", "version", "build_id", "scenes": [...]}``: one scene per task x crop x
    machine with at least two different output pictures (``variant`` label, ``image`` path in
    the site, ``same_image``: other variants whose output is the same bytes), its ``truth`` and
    ``input`` images; ``id`` is the scene's position."""
    scenes = []
    for task, crops in gallery.items():
        for crop in crops:
            for machine, outputs in sorted(crop.machines.items()):
                by_image: dict[str, list[str]] = {}
                for o in sorted(outputs, key=lambda o: o.variant):
                    if o.src:
                        by_image.setdefault(o.src, []).append(o.variant)
                # variants whose outputs are the same bytes are one picture: shown once, under
                # the first label, the others named in same_image (a vote is about pictures)
                shown = sorted(({"variant": labels[0], "image": image,
                                 "same_image": labels[1:]} for image, labels in by_image.items()),
                               key=lambda o: o["variant"])
                if len(shown) < 2:
                    continue
                scenes.append({"id": len(scenes), "task": task, "pair": crop.pair,
                               "ratio": crop.ratio, "machine": machine, "truth": crop.truth,
                               "input": crop.input, "outputs": shown})
    body = {"schema": JUDGE_SCHEMA, "version": 1, "scenes": scenes}
    return {**body, "build_id": json_digest(body, 24)}


def judge_context(manifest: dict[str, Any], results_folders: list[Any],
                  rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The Judge page's context: the manifest and the human scores of the votes kept for its
    build under ``results_folders`` (rank order), each with the PSNR (dB) and SSIM of the
    first of ``rows`` (the latest rows) of that variant."""
    from lowbench.judge.score import human_scores
    from lowbench.site.model import variant_of

    quality: dict[str, tuple[Any, Any]] = {}
    for row in rows:
        if row.get("status") == "ok":
            quality.setdefault(variant_of(row).label, (row.get("psnr_db"), row.get("ssim")))
    scores = human_scores(load_votes(results_folders, manifest))
    table = []
    for name, s in sorted(scores.items(), key=lambda kv: kv[1]["rank"]):
        psnr_db, ssim = quality.get(name, (None, None))
        table.append({"variant": name, **s,
                      "psnr_db": None if psnr_db is None else round(psnr_db, 2),
                      "ssim": None if ssim is None else round(ssim, 4)})
    from lowbench.site.svg import scatter_chart

    scatter = scatter_chart([(s["psnr_db"], s["score"], f"{s['variant']}: {s['score']:.2f} vs "
                              f"{s['psnr_db']:.2f} dB") for s in table
                             if s["psnr_db"] is not None],
                            x_label="PSNR dB", y_label="human score")
    return {"judge": manifest, "scores": table, "scatter": scatter}
