"""The site's Costs page and the CO2 footnotes of the leaderboard.

* cost to train: every training record (``lowbench train``: energy J, mean power W, duration s,
  gCO2e; :mod:`lowbench.results.training`), n/a with the reason where no meter was present;
* cost per 1,000 images: per variant of each leaderboard table, the gross and net energy per
  image x 1,000 (J) and the gCO2e the run recorded at its grid's intensity;
* break-even: after how many images a model that is cheaper to run has repaid the extra energy
  its training cost over another model's (:func:`break_even`), for two models of one table with
  the same quantization and runtime, each with a training record of the very weights the
  table measured (matched by checkpoint digest).

Nothing is invented: without a training record holding energy the page says so. Units: J, g.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import combinations
from typing import Any

from lowbench.results.columns import number
from lowbench.results.table import REFERENCE
from lowbench.site.model import Latest, reason, variant_of

#: The CO2 columns (their values are the run's energy x its grid intensity).
CARBON_COLUMNS = ("gco2e_per_1k_net", "gco2e_per_1k_gross")


def carbon_note(rows: Iterable[dict[str, Any]]) -> str:
    """The footnote of a table whose rows hold CO2 figures: at which intensity and from which
    source each was computed ('' when no row holds one)."""
    seen: dict[tuple[Any, Any], list[str]] = {}
    for row in rows:
        if any(row.get(c) is not None for c in CARBON_COLUMNS):
            key = (row.get("grid_intensity_g_per_kwh"), row.get("grid_source"))
            seen.setdefault(key, []).append(variant_of(row).label)
    if not seen:
        return ""
    parts = [f"{g:g} gCO2e/kWh from {src}" + (f" ({', '.join(labels)})" if len(seen) > 1 else "")
             for (g, src), labels in sorted(seen.items(), key=lambda kv: str(kv[0]))]
    return ("CO2e per 1,000 images = energy per image x 1,000 x the grid's carbon intensity given "
            "to lowbench evaluate: " + "; ".join(parts) + ".")


def break_even(train_a: float, per_image_a: float, train_b: float,
               per_image_b: float) -> tuple[float | None, str]:
    """Images after which B, cheaper per image than A, has repaid its extra training cost:
    ``n = (train_b - train_a) / (per_image_a - per_image_b)`` (any one unit: J or g).

    Returns ``(n, why)``: ``n`` 0 when B is also no dearer to train (it is ahead from the
    first image), None ("never") when B is not cheaper per image."""
    if per_image_b >= per_image_a:
        return None, "never: it costs no less per image, so its training cost is never repaid"
    if train_b <= train_a:
        return 0.0, "from the first image: it costs no more to train and less per image"
    n = (train_b - train_a) / (per_image_a - per_image_b)
    return n, (f"after {n:,.0f} images its {train_b - train_a:,.4g} extra to train is repaid "
               f"at {per_image_a - per_image_b:.4g} less per image")


def _weights_match(record: dict[str, Any], row: dict[str, Any]) -> bool:
    """Whether the training record trained the weights the row measured (by digest)."""
    from lowbench.results.provenance import shipped_digests

    sha = record["checkpoint"]["sha256"]
    if record["model"] != row.get("model"):
        return False
    if row.get("checkpoint") == REFERENCE:
        return sha in shipped_digests()
    return sha[:12] == row.get("checkpoint")


def training_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Template rows of the training records: values as text, n/a with the reason."""
    out = []
    for r in records:
        e, c = r["energy"], r["carbon"]
        out.append({
            "model": r["model"], "task": r["task"], "steps": r["steps"],
            "metered": r.get("steps_metered", r["steps"]), "machine": r["environment"][
                "machine_label"], "checkpoint": f"{r['checkpoint']['name']} "
            f"({r['checkpoint']['sha256'][:12]})", "created": r["created_utc"],
            "meter": e.get("meter") or "", "energy": _num(e["energy_j"]),
            "power": _num(e["mean_power_w"]), "duration": _num(e["duration_s"]),
            "energy_reason": e.get("reason") or "", "co2": _num(c["gco2e"]),
            "co2_reason": c.get("reason") or "",
            "intensity": "" if c["grid_intensity_g_per_kwh"] is None else
            f"{c['grid_intensity_g_per_kwh']:g} g/kWh, " + " ".join(
                str(c[k]) for k in ("country", "year", "source") if c.get(k) is not None)})
    return out


def _num(v: float | None) -> str | None:
    return None if v is None else number(v)


def _per_image_j(row: dict[str, Any]) -> float | None:
    mj = row.get("energy_per_inference_gross_mj") if row.get("status") == "ok" else None
    return None if mj is None else mj / 1000.0


def table_costs(lt: Latest, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One leaderboard table's costs: per variant J and gCO2e per 1,000 images, and the
    break-even of every pair of models (same quant and runtime) with training energy."""
    rows, pairs = [], []
    trained: dict[int, dict[str, Any]] = {}
    for i, row in enumerate(lt.rows):
        mine = [r for r in records if r["energy"]["energy_j"] is not None
                and _weights_match(r, row)]
        if mine:
            trained[i] = mine[-1]  # the latest record of these weights
        per_j = _per_image_j(row)
        net = row.get("energy_per_inference_net_mj") if row.get("status") == "ok" else None
        rows.append({"label": variant_of(row).label,
                     "gross": "n/a" if per_j is None else number(per_j * 1000.0),
                     "net": "n/a" if net is None else number(net),
                     "co2": "n/a" if row.get("gco2e_per_1k_gross") is None
                     else number(row["gco2e_per_1k_gross"], "gco2e_per_1k_gross"),
                     "reason": "" if per_j is not None else
                     reason(row, "energy_per_inference_gross_mj"),
                     "co2_reason": "" if row.get("gco2e_per_1k_gross") is not None else
                     reason(row, "gco2e_per_1k_gross"),
                     "train": "n/a" if i not in trained else
                     number(trained[i]["energy"]["energy_j"])})
    for i, j in combinations(sorted(trained), 2):
        a, b = lt.rows[i], lt.rows[j]
        va, vb = variant_of(a), variant_of(b)
        pa, pb = _per_image_j(a), _per_image_j(b)
        if (va.model == vb.model or (va.quant, va.runtime_name) != (vb.quant, vb.runtime_name)
                or pa is None or pb is None):
            continue
        if pb > pa:  # B: the one cheaper per image
            (a, va, pa, i), (b, vb, pb, j) = (b, vb, pb, j), (a, va, pa, i)
        n, why = break_even(trained[i]["energy"]["energy_j"], pa,
                            trained[j]["energy"]["energy_j"], pb)
        pairs.append({"cheaper": vb.label, "other": va.label,
                      "n": "never" if n is None else f"{n:,.0f}", "why": why})
    return {"slug": lt.table.slug, "title": lt.table.title, "commit": lt.commit_label,
            "rows": rows, "pairs": pairs, "any_energy": any(_per_image_j(r) is not None
                                                            for r in lt.rows)}


def costs_context(latests: Sequence[Latest], records: Sequence[dict[str, Any]]
                  ) -> dict[str, Any]:
    """Template data of the Costs page."""
    return {"training": training_rows(records),
            "metered": sum(r["energy"]["energy_j"] is not None for r in records),
            "tables": [table_costs(lt, records) for lt in latests]}
