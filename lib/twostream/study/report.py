"""Run the study's notebooks in order with papermill and write ``REPORT.md``.

``twostream reproduce --params params/smoke.yaml`` (what ``make reproduce`` calls):

* writes into a folder of its own, ``results/<params file stem>/`` (``--out DIR`` to choose):
  ``params/smoke.yaml`` -> ``results/smoke/``, ``params/ucf101.yaml`` -> ``results/ucf101/``;
* runs ``notebooks/NN_*.ipynb`` in order, each in a fresh kernel, with every key of the
  params file injected by papermill; executed copies go to ``<out>/executed/``, with this
  machine's paths replaced by relative ones;
* a failing notebook stops the run with the notebook, the cell and the error, and its
  partial output stays in ``<out>/executed/`` for inspection;
* each notebook's wall time and the tables/figures it wrote are logged in
  ``<out>/executed/run_log.json``; the report is rebuilt from that log and the provenance
  sidecars, so it never holds a hand-typed number;
* a folder holds one set of parameters: ``--only`` reruns merge into its log only when the
  resolved parameters are the same; with others the folder's old outputs are removed first
  (said on stdout), so a report never mixes two runs.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from twostream.core.config import StudyConfig, load_params
from twostream.core.errors import UserError
from twostream.core.formatting import MISSING, PERCENT_NOTE, fmt_interval, fmt_p, fmt_pct
from twostream.core.params_io import save_json
from twostream.core.runtime import atomic_write_text, device_description, project_root, results_dir
from twostream.core.threads import passive_wait
from twostream.study.executed import caption_of, finish_executed, read_csv_or_none
from twostream.study.mechanisms import MEANING
from twostream.study.paper import LITERATURE
from twostream.study.replication import OPPOSITE, compare_runs, final_verdict, replicates
from twostream.study.results import (
    git_commit,
    library_versions,
    markdown_table,
    readable,
    with_percent_note,
)

DATA_STATEMENT = {
    "synthetic": (
        "Every number in this report was measured on the **embedded synthetic action set** "
        "(v3: four class families designed so that each of the paper's mechanisms must show on "
        "one of them; generated on the fly), with a small backbone (resnet10_w32) trained from "
        "scratch on the CPU. These numbers test the code: that the pipeline runs end to end and "
        "detects the mechanisms it implements. They are **not comparable** with the paper's "
        "UCF101/HMDB51 accuracies, which are listed beside them only for reference."
    ),
    "ucf101": "Our rows were measured on **UCF101** (official splits), with the settings in the parameter file below.",
    "hmdb51": "Our rows were measured on **HMDB51** (official splits), with the settings in the parameter file below.",
}


def discover_notebooks(notebooks_dir: Path | None = None) -> list[Path]:
    nb_dir = notebooks_dir or project_root() / "notebooks"
    found = sorted(p for p in nb_dir.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise UserError(f"no notebooks NN_*.ipynb found in {nb_dir}")
    return found


def _snapshot(folder: Path) -> dict[str, float]:
    if not folder.is_dir():
        return {}
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()}


def _changed(before: dict[str, float], after: dict[str, float], suffix: str) -> list[str]:
    return sorted(
        Path(name).stem
        for name, mtime in after.items()
        if name.endswith(suffix) and before.get(name) != mtime
    )


KERNEL = "twostream"  # what `make install` registers and the notebooks' kernelspec names
OUTPUT_PARTS = ("tables", "figures", "executed")


def default_out(params_file: str | Path) -> Path:
    """``results/<stem>``: one folder per parameter file, so runs never overwrite each other."""
    return project_root() / "results" / Path(params_file).stem


def kernel_is_ours(argv0: str | os.PathLike, prefix: str | os.PathLike | None = None) -> bool:
    """Does a kernelspec whose ``argv[0]`` is ``argv0`` run in the environment ``prefix``
    (default: this interpreter's ``sys.prefix``)? Compared by the environment's folder
    (``<venv>/bin/python`` -> ``<venv>``), not by the resolved binary: two venvs made from
    one Python resolve to the same binary but hold different packages."""
    import sys

    env = Path(os.path.abspath(Path(argv0).expanduser())).parent.parent
    return env == Path(os.path.abspath(prefix if prefix is not None else sys.prefix))


def pick_kernel(requested: str | None = None) -> str:
    """``requested``, else the project's kernel when it is installed *for this environment*
    (:func:`kernel_is_ours`: a stale registration from another checkout would run other
    code), else this environment's own ``python3`` (what a plain ``pip install -e .``
    provides)."""
    if requested:
        return requested
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        spec = KernelSpecManager().get_kernel_spec(KERNEL)
        if kernel_is_ours(spec.argv[0]):
            return KERNEL
    except Exception:  # noqa: BLE001 - not installed, no jupyter_client: use the default
        pass
    return "python3"


def kernel_description(name: str) -> str:
    """``name (interpreter)`` for the log and the report."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        argv0 = KernelSpecManager().get_kernel_spec(name).argv[0]
    except Exception:  # noqa: BLE001 - an unknown kernel: its name alone
        return name
    root = str(project_root())
    return f"{name} ({argv0.replace(root + '/', '').replace(root, '.')})"


def strip_machine_paths(path: Path) -> None:
    """Replace this checkout's absolute path (and the home folder) in an executed notebook
    with relative ones: executed copies are committed and must not carry a build machine."""
    text = path.read_text(encoding="utf-8")
    root = str(project_root())
    new = text.replace(root + "/notebooks/", "").replace(root + "/", "").replace(root, ".")
    home = str(Path.home())
    if home not in ("/", ""):
        new = new.replace(home + "/", "~/")
    if new != text:
        path.write_text(new, encoding="utf-8")


def prepare_out(out: Path, params: dict[str, Any]) -> dict[str, Any]:
    """The run log to continue: the folder's own when its parameters are these, else a new
    one after clearing the folder's outputs of another parameter set."""
    log_path = out / "executed" / "run_log.json"
    if log_path.is_file():
        log = json.loads(log_path.read_text())
        if log.get("params") == params:
            return log
        import shutil

        changed = sorted(
            k for k in set(params) | set(log.get("params", {}))
            if params.get(k) != log.get("params", {}).get(k)
        )  # fmt: skip
        print(
            f"{out} holds a run with other parameters ({', '.join(changed[:6])}"
            f"{', ...' if len(changed) > 6 else ''}): its outputs are replaced, not merged",
            flush=True,
        )
        for part in OUTPUT_PARTS:
            shutil.rmtree(out / part, ignore_errors=True)
        (out / "REPORT.md").unlink(missing_ok=True)
    return {"notebooks": {}}


@contextlib.contextmanager
def _results_env(out: Path):
    """$TWOSTREAM_RESULTS = ``out`` while a kernel starts (it inherits the environment, so
    every table and figure lands in this run's folder), restored afterwards."""
    old = os.environ.get("TWOSTREAM_RESULTS")
    os.environ["TWOSTREAM_RESULTS"] = str(out)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TWOSTREAM_RESULTS", None)
        else:
            os.environ["TWOSTREAM_RESULTS"] = old


def run_notebook(
    src: Path, dst: Path, parameters: dict[str, Any], *, kernel_name: str = "python3"
) -> None:
    """Execute one notebook with papermill; on failure raise a UserError naming the cell."""
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    dst.parent.mkdir(parents=True, exist_ok=True)
    # papermill warns for every injected key that the notebook's parameters cell does not
    # list ("Passed unknown parameter"): the runner injects every StudyConfig field, already
    # validated against StudyConfig, so those warnings would only bury the progress.
    logging.getLogger("papermill").setLevel(logging.ERROR)
    try:
        pm.execute_notebook(
            str(src),
            str(dst),
            parameters=parameters,
            kernel_name=kernel_name,
            cwd=str(src.parent),
            progress_bar=True,
            log_output=False,
            # nbclient: no ipywidgets state in the saved notebook (the study creates no
            # widgets in a kernel; this keeps any third-party one out of the file too)
            store_widget_state=False,
        )
    except PapermillExecutionError as exc:
        # papermill numbers cells from 0 and counts the injected-parameters cell; name both.
        raise UserError(
            f"notebook {src.name} failed in cell {exc.cell_index} (execution count {exc.exec_count}): "
            f"{exc.ename}: {exc.evalue.strip().splitlines()[-1] if exc.evalue.strip() else ''} "
            f"-- partial output kept in {dst}"
        ) from None
    except DeadKernelError:
        # The kernel process vanished (killed, out of memory, a crash in native code): the
        # cell that was running is unknowable from here, the saved notebook shows how far it got.
        raise UserError(
            f"notebook {src.name}: its kernel ({kernel_name}) died (killed, out of memory or a "
            f"crash in native code) -- partial output kept in {dst}; check free memory and "
            f"rerun with `twostream reproduce --only {src.stem}`"
        ) from None
    except CellTimeoutError as exc:
        raise UserError(
            f"notebook {src.name}: a cell timed out ({str(exc).strip().splitlines()[0]}) "
            f"-- partial output kept in {dst}"
        ) from None
    finally:
        if dst.is_file():
            strip_machine_paths(dst)


# ----------------------------------------------------------------------------- executed notebooks


def reproduce(
    params_file: str | Path,
    *,
    only: list[str] | None = None,
    kernel_name: str | None = None,
    notebooks_dir: Path | None = None,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """Run the notebooks (all, or those whose name starts with one of ``only``) and write the
    report into ``out`` (default :func:`default_out`; ``$TWOSTREAM_RESULTS`` when set)."""

    passive_wait()  # every notebook kernel inherits it (see twostream.core.threads)
    params_path = Path(params_file)
    params = load_params(params_path)
    cfg = StudyConfig.from_dict(params, source=str(params_path))
    notebooks = discover_notebooks(notebooks_dir)
    if only:
        notebooks = [
            nb for nb in notebooks if any(nb.stem.startswith(o) or nb.stem == o for o in only)
        ]
        if not notebooks:
            raise UserError(
                f"--only {only} matches no notebook; known: "
                f"{', '.join(p.stem for p in discover_notebooks(notebooks_dir))}"
            )
    if out is None:
        out = results_dir() if os.environ.get("TWOSTREAM_RESULTS") else default_out(params_path)
    out = Path(out).resolve()
    kernel_name = pick_kernel(kernel_name)
    executed = out / "executed"
    log_path = executed / "run_log.json"
    log = prepare_out(out, cfg.to_dict())
    kernel = kernel_description(kernel_name)
    print(f"results -> {out} (kernel {kernel})", flush=True)
    log.update(
        {
            "params_file": str(params_path),
            "params": cfg.to_dict(),
            "git_commit": git_commit(),
            "versions": library_versions(),
            "device": device_description(),
            "kernel": kernel,
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
    )
    total = time.perf_counter()
    for i, nb in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] {nb.stem}", flush=True)
        before_t, before_f = _snapshot(out / "tables"), _snapshot(out / "figures")
        t0 = time.perf_counter()
        entry = {"status": "running"}
        log["notebooks"][nb.stem] = entry
        try:
            # Every field, not just the file's keys: a notebook's parameters cell holds the
            # test preset, and none of it may reach a study run.
            with _results_env(out):
                run_notebook(nb, executed / nb.name, cfg.to_dict(), kernel_name=kernel_name)
            finish_executed(executed / nb.name, params_file=params_path,
                            parameters=cfg.to_dict(), tables=out / "tables")  # fmt: skip
            entry["status"] = "ok"
        except UserError:
            entry["status"] = "failed"
            raise
        except BaseException:
            # anything else (Ctrl-C, a bug): the log must not keep saying "running"
            entry["status"] = "interrupted"
            raise
        finally:
            entry["wall_time_s"] = round(time.perf_counter() - t0, 1)
            entry["tables"] = _changed(before_t, _snapshot(out / "tables"), ".csv")
            entry["figures"] = _changed(before_f, _snapshot(out / "figures"), ".png")
            save_json(log, log_path)
        print(
            f"    done in {entry['wall_time_s']:.0f} s: {len(entry['tables'])} tables, "
            f"{len(entry['figures'])} figures",
            flush=True,
        )
    log["wall_time_s"] = round(time.perf_counter() - total, 1)
    save_json(log, log_path)
    report = write_report(log, out=out)
    print(f"report: {report}")
    return log


# ----------------------------------------------------------------------------- the report


def _n_clusters(r) -> str:
    n = int(r["n"]) if "n" in r and r["n"] == r["n"] else int(r["a_n"])
    c = r.get("clusters")
    return f"{n} ({int(c)})" if c is not None and c == c else str(n)


def _p(r) -> str:
    """p and its Holm correction (the rule decides on the corrected one)."""
    p, ph = fmt_p(r.get("p_value")), fmt_p(r.get("p_holm"))
    return p if ph == MISSING or p == MISSING else f"{p} ({ph})"


def _power(r) -> str:
    n80 = r.get("n80_10_points")
    if n80 is None or n80 != n80:
        return "–"
    return f"{int(n80)}" + (" (underpowered)" if bool(r.get("underpowered")) else "")


def claims_check(tables: Path) -> list[str]:
    """The paper's surviving claims beside what this run measured (``claims.csv``, written
    by notebook 06): each a paired difference with its 95% interval and a verdict."""

    claims = read_csv_or_none(tables / "claims.csv")
    if claims is None or claims.empty:
        return []
    lines = ["| the paper says | where | compared (a -> b) | on | n (clusters) | b - a (points) | "
             "95% interval | p (Holm) | verdict (Holm) | rule |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for _, r in claims.iterrows():
        diff = fmt_pct(r["diff"], signed=True)
        lines.append(
            f"| {r['claim']} | {r['in_paper']} | {r['comparison']}: {fmt_pct(r['a_top1'])}% -> "
            f"{fmt_pct(r['b_top1'])}% | {r['measured_on']} | {_n_clusters(r)} | {diff} | "
            f"{fmt_interval(r['diff_ci_low'], r['diff_ci_high'], signed=True)} | {_p(r)} | "
            f"**{final_verdict(r)}** | {r.get('rule', '')} |"
        )
    return lines


def mechanism_section(tables: Path) -> list[str]:
    """The embedded benchmark's mechanism checks and controls (``mechanism_checks.csv``,
    written by notebook 07), as the report's first section."""

    t = read_csv_or_none(tables / "mechanism_checks.csv")
    if t is None or t.empty:
        return []
    side = tables / "mechanism_checks.json"
    cell = json.loads(side.read_text()).get("cell", "") if side.is_file() else ""
    lines = [
        "## Mechanism checks on the embedded set",
        "",
        "Each of the paper's mechanisms on the synthetic class family designed so that it must "
        "show (M1-M5), and each negative control that removes it (N1-N3): paired on the same "
        "test videos of the family, all splits pooled, 95% cluster-bootstrap interval, Holm over the family"
        + (f"; the heads at the designed cell {cell}" if cell else "")
        + ". For the controls N1-N3 the difference is the accuracy minus chance (N1, N2: 1/2 "
        "within a pair of classes; N3: 1/K), and N2 also needs the aligned model to be better. "
        + MEANING
        + " "
        + PERCENT_NOTE,
        "",
        "| check | family | claim | a -> b | n (clusters) | diff (points) | 95% interval | p (Holm) "
        "| expected | verdict (Holm) | power: n for 80% at 10 points |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in t.iterrows():
        b = r["b"] if isinstance(r.get("b"), str) and r["b"] else ""
        if b:
            ab = f"{r['a']} {fmt_pct(r['a_top1'])}% -> {b} {fmt_pct(r['b_top1'])}%"
        else:
            ab = f"{r['a']} {fmt_pct(r['a_top1'])}% (chance {fmt_pct(r['chance'])}%)"
        lines.append(
            f"| {r['check']} | {r['family']} | {r['claim']} | {ab} | {_n_clusters(r)} | "
            f"{fmt_pct(r['diff'], signed=True)} | {fmt_interval(r['diff_ci_low'], r['diff_ci_high'], signed=True)} "
            f"| {_p(r)} | {r['expected']} | **{final_verdict(r)}** | {_power(r)} |"
        )
    return [*lines, "", "![mechanism checks](figures/mechanism_checks.png)", ""]


# results/<stem>-confirm holds the same study on a synthetic seed the design never saw
# (params/smoke-confirm.yaml, `make confirm`); the report of <stem> shows both side by side.
CONFIRM_SUFFIX = "-confirm"


def confirmation_section(out: Path) -> list[str]:
    """The mechanism verdicts of this run beside those of its confirmation run (the sibling
    folder ``<out><CONFIRM_SUFFIX>``), when that run exists."""
    mine = read_csv_or_none(out / "tables" / "mechanism_checks.csv")
    other_dir = out.parent / f"{out.name}{CONFIRM_SUFFIX}"
    other = read_csv_or_none(other_dir / "tables" / "mechanism_checks.csv")
    if mine is None or other is None or mine.empty or other.empty:
        return []
    log_path = other_dir / "executed" / "run_log.json"
    log = json.loads(log_path.read_text()) if log_path.is_file() else {}
    seed = log.get("params", {}).get("synth_seed", "?")
    theirs = {r["check"]: r for _, r in other.iterrows()}

    def cell(r) -> str:
        ci = fmt_interval(r["diff_ci_low"], r["diff_ci_high"], signed=True)
        return f"{fmt_pct(r['diff'], signed=True)} {ci}, **{final_verdict(r)}**"

    lines = [
        f"## Confirmation on a fresh synthetic seed ({other_dir.name})",
        "",
        f"The instrument (the designed cell, the class families, the controls) was designed on "
        f"this run's data and fixed before `{log.get('params_file', other_dir.name)}` was first "
        f"run: the same study on synth_seed {seed}, a seed never used while designing "
        f"(commit `{log.get('git_commit', '?')}`). A check is confirmed when its verdict "
        "(after Holm) is the expected one on both seeds; one that holds on the design seed "
        "only says more about that draw of the data than about the implementation.",
        "",
        "| check | expected | this run: diff (points), 95% interval, verdict (Holm) | "
        f"seed {seed}: diff, interval, verdict (Holm) | confirmed |",
        "|---|---|---|---|---|",
    ]
    for _, r in mine.iterrows():
        o = theirs.get(r["check"])
        both = o is not None and final_verdict(r) == r["expected"] == final_verdict(o)
        lines.append(f"| {r['check']} | {r['expected']} | {cell(r)} | "
                     f"{cell(o) if o is not None else '-'} | {'yes' if both else 'no'} |")  # fmt: skip
    return [*lines, ""]


# results/<stem>-reseeded holds the same study, same data, other training seeds
# (params/smoke-reseeded.yaml, `make reseed`); the report of <stem> lines their verdicts up.
RESEED_SUFFIX = "-reseeded"


def replication_section(out: Path) -> list[str]:
    """This run's verdicts beside those of the run that differs only in its training seeds
    (the sibling folder ``<out><RESEED_SUFFIX>``), by :mod:`twostream.study.replication`'s
    rule, when that run exists."""
    other = out.parent / f"{out.name}{RESEED_SUFFIX}"
    if not (other / "tables").is_dir():
        return []
    pairs = compare_runs(out, other)
    if pairs.empty:
        return []
    log_path = other / "executed" / "run_log.json"
    log = json.loads(log_path.read_text()) if log_path.is_file() else {}
    prm = log.get("params", {})
    counts = pairs["agreement"].value_counts()

    def cell(v, d, lo, hi) -> str:
        if v is None:
            return "-"
        if d is None or d != d:  # no difference (e.g. "by construction")
            return v
        return f"{fmt_pct(d, signed=True)} {fmt_interval(lo, hi, signed=True)}, {v}"

    lines = [
        f"## Replication with other training seeds ({other.name})",
        "",
        f"The same study on the same data, trained again with stream seeds "
        f"{prm.get('stream_seeds', '?')} and head seeds {prm.get('head_seeds', '?')} "
        f"(commit `{log.get('git_commit', '?')}`). Rule: a pair of verdicts *agrees* when it "
        "is the same (after Holm), is *one inconclusive* when one run is decisive and the "
        "other not (allowed: the effect is near what the test can see), and is *opposite* "
        "when one run supports what the other contradicts. The verdicts replicate when no "
        "pair is opposite. Tables 1 and 2 are left out: they compare each cell with the "
        "cell chosen on validation, which may differ between the runs.",
        "",
        "**"
        + ("The verdicts replicate" if replicates(pairs) else "The verdicts do NOT replicate")
        + "**: "
        + ", ".join(
            f"{int(counts.get(k, 0))} {k}"
            for k in ("agree", "one inconclusive", OPPOSITE, "missing")
        )
        + ".",
        "",
        "| table | row | this run: diff (points), 95% interval, verdict | "
        "reseeded: diff, interval, verdict | pair |",
        "|---|---|---|---|---|",
    ]
    for _, r in pairs.iterrows():
        a = cell(r["verdict_a"], r["diff_a"], r["diff_ci_low_a"], r["diff_ci_high_a"])
        b = cell(r["verdict_b"], r["diff_b"], r["diff_ci_low_b"], r["diff_ci_high_b"])
        lines.append(f"| {r['table']} | {r['row']} | {a} | {b} | {r['agreement']} |")
    return [*lines, ""]


def _chosen_cell(tables: Path) -> str | None:
    """Which Table 1 cell Table 3's ConvLSTM uses, and why (table3_comparison's sidecar)."""
    side = tables / "table3_comparison.json"
    if not side.is_file():
        return None
    info = json.loads(side.read_text())
    return info.get("fusion_reason")


def write_report(log: dict[str, Any], *, out: Path | None = None) -> Path:
    out = Path(out) if out is not None else results_dir()
    tables = out / "tables"
    params = log.get("params", {})
    dataset = params.get("dataset", "synthetic")
    md: list[str] = [
        "# Reproducibility report: two-stream ResNet + feature-map fusion + ConvLSTM",
        "",
        "Ye, Cheng, Yang & Xu, *Two-Stream Convolutional Network for Improving Activity Recognition "
        "Using Convolutional Long Short-Term Memory Networks*, IEEE Access 7 (2019).",
        "",
        f"Generated by `twostream reproduce --params {log.get('params_file')}` "
        f"(started {log.get('started')}, total wall time {log.get('wall_time_s', 0):.0f} s).",
        "",
        *mechanism_section(tables),
        *confirmation_section(out),
        *replication_section(out),
        "## Which data these numbers come from",
        "",
        DATA_STATEMENT.get(dataset, f"Data set: {dataset}."),
        "",
        "## Provenance",
        "",
        f"- git commit: `{log.get('git_commit')}`",
        f"- device: {log.get('device')}",
        f"- notebook kernel: {log.get('kernel', 'not recorded')}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in log.get("versions", {}).items()),
        "",
        "| notebook | status | wall time (s) | tables | figures |",
        "|---|---|---|---|---|",
    ]
    for name, e in log.get("notebooks", {}).items():
        md.append(
            f"| [{name}](executed/{name}.ipynb) | {e.get('status')} | {e.get('wall_time_s')} | "
            f"{', '.join(e.get('tables', []))} | {', '.join(e.get('figures', []))} |"
        )
    md += [
        "",
        "<details><summary>Parameters (resolved)</summary>",
        "",
        "```json",
        json.dumps(params, indent=1, sort_keys=True),
        "```",
        "</details>",
        "",
    ]
    chosen = _chosen_cell(tables)
    if chosen:
        md += ["## The model Table 3 reports", "", f"The two-stream ConvLSTM uses {chosen}.", ""]
    claims = claims_check(tables)
    if claims:
        md += [
            "## The paper's claims beside our measurements",
            "",
            "The paper's tables lost their numbers in conversion; these are the claims that survive "
            "in its text, each a paired comparison on this run's test videos (cluster bootstrap over "
            "(class, group) within each split, 10,000 resamples: the interval of the difference; "
            "the test, its rule and parameters, raw and Holm-corrected p in claims.csv). Each "
            "claim type has one rule (superiority, equivalence by TOST at +-2 points, not greater); "
            "the verdict shown is the Holm-corrected one. "
            + PERCENT_NOTE
            + (
                " On the synthetic smoke set a verdict says whether the implementation shows the "
                "effect on this data; it says nothing about the paper's claims on UCF101 / HMDB51, "
                "which need the real data sets."
                if dataset == "synthetic"
                else ""
            ),
            "",
            *claims,
            "",
        ]
    for name, e in log.get("notebooks", {}).items():
        items = e.get("tables", []) + e.get("figures", [])
        if not items:
            continue
        md += [f"## {name}", ""]
        for t in e.get("tables", []):
            df = read_csv_or_none(tables / f"{t}.csv")
            caption = caption_of(tables / f"{t}.json")
            if df is not None:  # a sidecar written before the note was added lacks it
                caption = with_percent_note(caption, df)
            md += [f"### Table `{t}`", "", caption, ""]
            if df is not None:
                # for reading: percent, one decimal, intervals beside the value (the CSV
                # keeps full precision)
                body = markdown_table(readable(df)).strip().splitlines()
                md += body[:60] + (
                    ["", f"... ({len(body) - 60} more rows in the CSV)"] if len(body) > 60 else []
                )
            md += ["", f"[CSV](tables/{t}.csv) · [provenance](tables/{t}.json)", ""]
        for f in e.get("figures", []):
            md += [
                f"### Figure `{f}`",
                "",
                caption_of(out / "figures" / f"{f}.json"),
                "",
                f"![{f}](figures/{f}.png)",
                "",
            ]
    md += [
        "## Literature rows (three-split means, as cited by the paper)",
        "",
        "| method | UCF101 | HMDB51 | source |",
        "|---|---|---|---|",
    ]
    for row in LITERATURE:
        h = "–" if row["hmdb51"] is None else row["hmdb51"]
        md.append(f"| {row['method']} | {row['ucf101']} | {h} | {row['source']} |")
    md.append("")
    path = out / "REPORT.md"
    atomic_write_text(path, "\n".join(md))
    return path


# ----------------------------------------------------------------------------- CLI
