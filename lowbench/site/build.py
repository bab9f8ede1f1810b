"""``lowbench site build``: read every result and write the static site.

The site is written into a sibling staging folder and swapped into place at the end, so a reader
never sees half a site and a failed build leaves the previous one. An existing ``--out`` folder is
replaced only if it holds the marker file of a previous build (``.lowbench-site``).
Every page is rendered by jinja2 with autoescaping on; all links are relative; nothing in the
output depends on the time, the build machine or the results folders' absolute paths.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from lowbench.errors import LowbenchError, OutputError
from lowbench.fsutil import atomic_write_text, check_output_folder, output_error
from lowbench.results.columns import header
from lowbench.results.records import RecordWarning
from lowbench.results.table import load_table
from lowbench.results.training import load_training_records
from lowbench.site import downloads, history_pages, pages
from lowbench.site.ablation import build_ablation
from lowbench.site.charts import pareto_figure
from lowbench.site.costs import costs_context
from lowbench.site.gallery import ImageStore, build_gallery
from lowbench.site.history import build_history
from lowbench.site.judge import JUDGE_FILE, judge_context, judge_manifest
from lowbench.site.machines import write_machine_pages
from lowbench.site.memory_curves import curve_context, curve_figure, load_curves
from lowbench.site.model import Variant, group_tables, latest, variant_slug

MARKER = ".lowbench-site"
#: From this many rows on, rows.csv and rows.json are written by two child processes while this
#: one renders the pages (they are ~60% of the page-writing CPU time at 200,000 rows).
PARALLEL_ROWS = 20_000


class _Job:
    """A function run in a forked child process (or already run in this one): wait() joins it
    and raises if it failed."""

    def __init__(self, proc: multiprocessing.process.BaseProcess | None, name: str) -> None:
        self.proc, self.name = proc, name

    def wait(self) -> None:
        """Block until done; RuntimeError if the child failed (its traceback is on stderr)."""
        if self.proc is None:
            return
        self.proc.join()
        if self.proc.exitcode != 0:
            raise RuntimeError(f"{self.name} failed in a child process "
                               f"(exit code {self.proc.exitcode}); see the traceback above")


def _background(fn: Callable[..., Any], *args: Any, parallel: bool) -> _Job:
    """Run ``fn(*args)`` in a forked child while this process goes on (when ``parallel``, fork
    exists and no other thread runs here), else right now. Only for functions whose effect is
    files: a child's return value is lost."""
    if (parallel and threading.active_count() == 1
            and "fork" in multiprocessing.get_all_start_methods()):
        proc = multiprocessing.get_context("fork").Process(target=fn, args=args, daemon=True)
        proc.start()
        return _Job(proc, getattr(fn, "__name__", "job"))
    fn(*args)
    return _Job(None, "")


def _prepare_out(out: Path) -> Path:
    """Check that ``out`` may be (re)written; return a fresh staging folder beside it."""
    if out.exists():
        if not out.is_dir():
            raise LowbenchError(f"--out {out} is a file; choose a folder for the site")
        if any(out.iterdir()) and not (out / MARKER).is_file():
            raise LowbenchError(
                f"refusing to replace {out}: it is not empty and holds no {MARKER} file from a "
                "previous site build; choose a new or empty --out folder")
    check_output_folder(out.parent, option=f"--out {out}: its parent")
    stage = out.parent / f".{out.name}.building"
    try:
        if stage.exists():
            shutil.rmtree(stage)
        stage.mkdir(parents=True)
    except OSError as err:
        raise output_error(stage, err) from err
    return stage


def _swap(stage: Path, out: Path) -> None:
    old = out.parent / f".{out.name}.old"
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        out.rename(old)
    stage.rename(out)
    if old.exists():
        shutil.rmtree(old)


def build_site(results_folders: Iterable[str | Path], out_dir: str | Path) -> dict[str, Any]:
    """Read every record under ``results_folders`` and write the static site into ``out_dir``.

    Returns a summary: ``pages`` (HTML pages written), ``rows`` (result rows read), ``skipped``
    (malformed or foreign files, each also reported as a RecordWarning), ``tables`` (task x
    machine tables) and ``out``. Raises LowbenchError for a missing results folder or an
    ``out_dir`` that is not a previous site.
    """
    folders = [Path(f) for f in results_folders]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise LowbenchError(f"no results folder {', '.join(missing)}: run `lowbench evaluate` "
                            "first or pass --results DIR")
    out = Path(out_dir)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = load_table(folders)
    skipped = sum(issubclass(c.category, RecordWarning) for c in caught)
    for c in caught:
        warnings.warn_explicit(c.message, c.category, c.filename, c.lineno)
    stage = _prepare_out(out)
    timings = {"load_s": time.perf_counter() - t0}
    try:
        summary = _write_site(stage, folders, result.rows, result.machines, skipped, timings)
        (stage / MARKER).write_text("generated by `lowbench site build`; the whole folder is "
                                    "replaced by the next build\n", encoding="utf-8")
        _swap(stage, out)
    except OutputError:  # already names the file and the fix
        shutil.rmtree(stage, ignore_errors=True)
        raise
    except OSError as err:  # disk full, file-size limit...: the previous site stays
        shutil.rmtree(stage, ignore_errors=True)
        raise output_error(out, err, what="write the site into") from err
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    summary["out"] = str(out)
    timings["total_s"] = time.perf_counter() - t0
    summary["timings"] = {k: round(v, 3) for k, v in timings.items()}
    return summary


def _write_site(out: Path, folders: list[Path], rows: list[dict[str, Any]],
                machines: dict[str, dict[str, Any]], skipped: int,
                timings: dict[str, float]) -> dict[str, Any]:
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - clock[0]
        clock[0] = now

    w = pages.Writer(out, pages.environment(), len(rows))
    tables = group_tables(rows)
    latests = [latest(t) for t in tables]
    histories = [build_history(t) for t in tables]
    lap("history_s")
    hrefs: dict[tuple[tuple, Variant], str] = {}
    for h in histories:
        t = h.table
        for s in h.series:
            hrefs[(t.key, s.variant)] = f"variant/{variant_slug(t, s.variant)}.html"
    data = out / "data"
    files = {lt.table.key: downloads.write_table(data, f"leaderboard-{lt.table.slug}", lt.rows)
             for lt in latests}
    big = len(rows) >= PARALLEL_ROWS
    cols = downloads.columns_of(rows)
    data.mkdir(parents=True, exist_ok=True)
    all_rows = [_background(downloads.write_csv, data, "rows", rows, cols, parallel=big),
                _background(downloads.write_json, data, "rows", rows, cols, parallel=big)]
    changes = history_pages.changes_rows(histories)
    downloads.write_table(data, "changes", changes, history_pages.change_columns(changes))
    store = ImageStore(out)
    lap("downloads_s")

    # leaderboard, Pareto charts, ablation, gallery
    boards = [pages.leaderboard_ctx(lt, hrefs, files) for lt in latests]
    w.page("index.html", "index.html", title="lowbench leaderboard", tables=boards,
           skipped=skipped)
    lap("pages_s")
    charts = []
    for lt in latests:
        src = f"charts/pareto-{lt.table.slug}.png"
        made = pareto_figure(lt.rows, out / src, f"{lt.table.title} (commit {lt.commit_label})")
        charts.append({"slug": lt.table.slug, "title": lt.table.title,
                       "src": src if made else None})
    lap("charts_s")
    w.page("pareto.html", "pareto.html", title="Pareto charts", charts=charts)
    studies = []
    for lt in latests:
        a = build_ablation(lt)
        studies.append({"slug": lt.table.slug, "title": lt.table.title,
                        "commit": lt.commit_label, "headers": [header(m) for m in a.metrics],
                        "tricks": a.tricks, "grids": a.grids,
                        "preprocess_measured": a.preprocess_measured,
                        "runtime_measured": a.runtime_measured})
    w.page("ablation.html", "ablation.html", title="Ablation study", studies=studies)
    gallery = build_gallery(latests, store, hrefs)
    w.page("gallery.html", "gallery.html", title="Gallery", gallery=list(gallery.items()))
    manifest = judge_manifest(gallery)
    atomic_write_text(out / JUDGE_FILE, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    w.page("judge.html", "judge.html", title="Judge: which output looks better?",
           **judge_context(manifest, folders, [r for lt in latests for r in lt.rows]))
    curves = []  # the swap curves of the results folders (lowbench.measure.memory_curve)
    for doc in load_curves(folders):
        src = f"charts/memory-{doc['slug']}.png"
        curve_figure(doc, out / src)
        curves.append(curve_context(doc, src))
    w.page("memory.html", "memory.html", title="Memory: full frames under a limit",
           curves=curves)
    w.page("costs.html", "costs.html", title="Costs: to train and to run",
           **costs_context(latests, load_training_records(folders)))

    # history and variant pages
    overview = []
    for h, lt in zip(histories, latests, strict=True):
        overview.append(history_pages.history_page(w, h, hrefs))
        history_pages.variant_pages(w, h, lt, hrefs, store)
    cap = history_pages.MAX_CHANGES
    recent = [history_pages.change_ctx(c, h, hrefs[(h.table.key, c.variant)])
              for o, h in zip(overview, histories, strict=True) for c in o.pop("recent")]
    w.page("history.html", "history.html", title="History", tables=overview,
           recent=recent[:cap], truncated=len(recent) if len(recent) > cap else 0,
           show_table=True, bands=history_pages.bands(rows))

    # machines (list, comparison, one page each) and downloads
    write_machine_pages(w, rows, tables, machines)
    w.page("downloads.html", "downloads.html", title="Downloads", tables=boards)
    lap("pages_s")
    for job in all_rows:
        job.wait()
    lap("rows_download_wait_s")
    return {"pages": w.pages, "rows": len(rows), "skipped": skipped, "tables": len(tables)}
