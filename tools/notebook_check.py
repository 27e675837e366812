#!/usr/bin/env python3
"""What a reader sees in the executed notebooks: render each one and check it.

    python tools/notebook_check.py results/smoke/executed
    python tools/notebook_check.py results/smoke/executed --screenshot docs/img/notebook.png \\
        --screenshot-notebook 05_final_comparison.ipynb --json /tmp/nbcheck.json
    python tools/notebook_check.py results/smoke/executed --no-browser   # without chromium

Standalone (nbformat, nbconvert and the standard library; not the ``twostream`` package), so
it runs on any copy of ``results/<params>/executed/``. Each notebook is rendered to HTML with
nbconvert's ``lab`` template (as JupyterLab would show it: cells whose
``metadata.jupyter.source_hidden`` is true are rendered without their source, cells whose
``outputs_hidden`` is true without their outputs) and, unless ``--no-browser``, opened in
headless Debian chromium (``apt-get install -y chromium``), offline: every host name is made
unresolvable, so the CDN scripts of the template (require.js, MathJax, the ipywidgets
renderer) do not load and the page is what a reader without a kernel or network sees.

Checks on the notebook file (every one has a name, a measured value and a limit):

``size_bytes``
    the file's size in bytes, at most ``--max-bytes`` (MAX_NOTEBOOK_BYTES).
``max_output_lines``
    the most lines shown by one cell's output area (the cell is named in the detail), at most
    ``--max-output-lines`` (MAX_OUTPUT_LINES). A cell's lines are the sum over its outputs,
    each counted in the representation a renderer displays:
    stream: lines after carriage-return collapse (``a\\rb`` shows ``b``, as in JupyterLab),
    so consecutive one-line prints add up; error: traceback lines;
    widget (``application/vnd.jupyter.widget-view+json``): the lines of its ``text/plain``
    fallback (at least 1), which is what shows without a live widget manager;
    ``text/html``: the lines of its visible text, one per table row (``<tr>``), paragraph,
    list item, ``<br>`` or ``<pre>`` line; ``text/markdown``: its non-blank lines, less table
    separator rows (``|---|``); ``text/plain`` (when nothing richer is there): its lines;
    images: 0 (their cost is the size check's business).
``frozen_progress``
    the number of progress-bar lines in the outputs, which must be 0: in a saved notebook
    every bar is frozen at whatever it last drew (tqdm's ``0%|          | 0/108 [00:00<?,
    ?chunk/s]``). Counted: shown lines (stream text after carriage-return collapse,
    ``text/plain``, widget fallbacks) that match PROGRESS_PATTERNS; stream lines that were
    overwritten by a carriage return (terminal bars and spinners); and progress widgets
    (an ``HBox`` holding an ``IntProgress``/``FloatProgress`` in the saved widget state)
    whose fallback text does not already match.
``first_output_is_result``
    the first output in document order (code cells only; the papermill cell tagged
    ``injected-parameters`` is skipped, and so are empty outputs: whitespace-only streams and
    display data with nothing but blank values) must be a *table* or a *verdict*:
    a ``display_data``/``execute_result`` whose ``text/html`` contains ``<table``, or whose
    ``text/markdown`` has a table separator row (``|---|``), or whose rendered text
    (``text/markdown`` or ``text/html``) has a line that starts with a verdict word
    (VERDICT_WORDS), optionally after a short label and a colon (``Verdict: supported``,
    ``M1: supported``) and markdown markers (``#``, ``>``, ``-``, ``*``, ``**``).
    A print (stream), a progress bar, an image, a repr in ``text/plain`` or an error fails.
    The value is the kind found: table, verdict, stream, progress, widget, text, image,
    error or none.
``duplicate_images``
    figure payloads stored more than once, which must be 0: identical payloads (SHA-1 of the
    base64/SVG text of ``image/*`` and ``application/pdf`` data) beyond their first
    occurrence, plus every extra figure format carried by one output (``image/png`` together
    with ``application/pdf`` or ``image/svg+xml`` is the same figure twice).
``max_figure_dpi``
    the highest resolution declared by a PNG output (its ``pHYs`` chunk, which matplotlib
    writes), at most ``--max-dpi`` (MAX_FIGURE_DPI); PNGs without ``pHYs`` are not counted.
``injected_cell_collapsed``
    when papermill injected a parameters cell (tag ``injected-parameters``), its metadata
    collapses it in JupyterLab: ``metadata.jupyter.source_hidden`` (or ``outputs_hidden``)
    is true. Value: ``collapsed``, ``not collapsed`` or ``absent`` (passes).

Checks on the rendered page (``--browser``, the default), from the DOM that chromium built
(``--dump-dom``; a script added to the page reads ``innerText``, i.e. the text a reader sees,
of every output area): ``dom_max_output_lines`` (non-blank ``innerText`` lines of one
cell's outputs, at most the same limit), ``dom_frozen_progress`` (those lines that match
PROGRESS_PATTERNS, must be 0) and ``dom_first_output_is_result`` (the first output with
visible text, outside the injected cell, holds a ``<table>`` or is a rendered markdown/HTML
output with a verdict line).

Besides the checks, ``size_breakdown`` (printed under a notebook that is over budget, and in
the JSON) says where the bytes are: saved widget state (``metadata.widgets``), outputs by
kind, sources, and the largest cell outputs.

Exit status: 0 when every check of every notebook passes, 1 when one fails, 2 on a usage
error (no such directory, no notebooks, an unknown ``--screenshot-notebook``, chromium
missing while the browser part is asked for, or a render that fails).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Iterable
from html.parser import HTMLParser
from pathlib import Path

# Limits (each can be changed on the command line).
# 40 lines: about one screen of a laptop at a normal font size; a reader should never have to
# scroll through an output to reach the next cell (a training log belongs in a log file).
MAX_OUTPUT_LINES = 40
# 1 MB per executed notebook: a result a reader opens on GitHub or nbviewer (which refuse or
# crawl on multi-megabyte files) and that git keeps a copy of at every regeneration.
MAX_NOTEBOOK_BYTES = 1_000_000
# 150 dpi: sharp on a laptop screen; the project's figures are written at 120 dpi
# (twostream's save_figure), matplotlib's inline backend draws at 100 (retina: 200).
MAX_FIGURE_DPI = 150

CHROMIUM = "/usr/bin/chromium"
WINDOW_SIZE = "1280,2000"  # a laptop-width page, about two screens tall
CHROMIUM_TIMEOUT_S = 120
INJECTED_TAG = "injected-parameters"

# Progress-bar text (tqdm and alike) as it is left in a saved notebook.
PROGRESS_PATTERNS = [
    re.compile(r"\d+%\|"),  # "  0%|", " 45%|████"
    re.compile(r"\|\s*\d+/\d+\s*\["),  # "| 0/108 ["
    re.compile(r"\[\d+:\d+(?::\d+)?<[\d:?]+"),  # "[00:00<?", "[00:03<00:10"
    re.compile(r"(?:\?|\d)\s*[A-Za-z]+/s\]"),  # "?chunk/s]", "3.2it/s]", "12.0video/s]"
    re.compile(r"\ds/[A-Za-z]+\]"),  # "1.25s/it]"
]
VERDICT_WORDS = ("supported", "contradicted", "inconclusive", "as expected")
_VERDICT_RE = re.compile(
    r"^(?:[^:\n]{1,40}:\s*)?(?:" + "|".join(re.escape(w) for w in VERDICT_WORDS) + r")\b",
    re.IGNORECASE,
)
_MD_TABLE_SEP_RE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_MD_LEAD_RE = re.compile(r"^[\s#>*+\-_`]*")

FIGURE_MIMES = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/svg+xml",
    "application/pdf",
)
# The order nbconvert's HTML templates pick an output's representation in.
DISPLAY_PRIORITY = (
    "application/vnd.jupyter.widget-view+json",
    "application/javascript",
    "text/html",
    "text/markdown",
    "image/svg+xml",
    "text/latex",
    "image/png",
    "image/jpeg",
    "text/plain",
)
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


class UsageError(Exception):
    """Exit status 2."""


# ---------------------------------------------------------------------------------------
# text helpers


def _text(value) -> str:
    if isinstance(value, list):
        return "".join(value)
    if isinstance(value, str):
        return value
    return json.dumps(value)


def collapse_cr(text: str) -> tuple[list[str], int]:
    """Lines as a terminal (and JupyterLab) shows ``text``: each line keeps what follows its
    last carriage return. Also returns how many lines were overwritten that way."""
    text = text.replace("\r\n", "\n")
    lines, overwritten = [], 0
    for line in text.split("\n"):
        if "\r" in line:
            states = [p for p in line.split("\r") if p]
            if len(states) > 1:
                overwritten += 1
            line = states[-1] if states else ""
        lines.append(line)
    while lines and not lines[-1].strip():
        lines.pop()
    return lines, overwritten


def is_progress(line: str) -> bool:
    return any(p.search(line) for p in PROGRESS_PATTERNS)


def _is_verdict_line(line: str) -> bool:
    line = _MD_LEAD_RE.sub("", line).replace("**", "").replace("__", "").strip()
    return bool(_VERDICT_RE.match(line))


class _VisibleText(HTMLParser):
    """The text of an HTML fragment with one line per block (row, paragraph, item, br)."""

    BLOCKS = {
        "p", "div", "tr", "li", "br", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table",
        "thead", "tbody", "ul", "ol", "blockquote", "hr", "caption", "section", "details",
    }  # fmt: skip
    HIDDEN = {"script", "style", "head", "title", "template"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0
        self.pre = 0

    def handle_starttag(self, tag, attrs):
        if tag == "pre":
            self.pre += 1
        if tag in self.HIDDEN:
            self.hidden += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append("\t")

    def handle_endtag(self, tag):
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.hidden:
            # outside <pre>, a browser shows any run of white space as one space
            self.parts.append(data if self.pre else re.sub(r"\s+", " ", data))


def html_lines(fragment: str) -> list[str]:
    """Non-blank visible lines of an HTML fragment (see :class:`_VisibleText`)."""
    parser = _VisibleText()
    parser.feed(fragment)
    parser.close()
    return [ln for ln in "".join(parser.parts).split("\n") if ln.strip()]


def markdown_lines(text: str) -> list[str]:
    return [ln for ln in text.split("\n") if ln.strip() and not _MD_TABLE_SEP_RE.match(ln)]


# ---------------------------------------------------------------------------------------
# notebook model


def load_notebook(path: Path):
    import nbformat

    return nbformat.read(str(path), as_version=4)


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []) or [])


def _progress_widget_ids(nb) -> set[str]:
    """Model ids of saved widgets that draw a progress bar (tqdm.notebook: an HBox holding
    an IntProgress or FloatProgress)."""
    state = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    bars = {k for k, v in state.items() if str(v.get("model_name", "")).endswith("ProgressModel")}
    ids = set(bars)
    for k, v in state.items():
        children = v.get("state", {}).get("children", []) or []
        if any(str(c).removeprefix("IPY_MODEL_") in bars for c in children):
            ids.add(k)
    return ids


def _display_mime(data: dict) -> str | None:
    for mime in DISPLAY_PRIORITY:
        if mime in data:
            return mime
    return next(iter(data), None)


def output_lines(output, progress_widgets: set[str]) -> tuple[list[str], int]:
    """``(shown lines, progress lines)`` of one output (see the module docstring)."""
    kind = output.get("output_type")
    if kind == "stream":
        lines, overwritten = collapse_cr(_text(output.get("text", "")))
        return lines, sum(map(is_progress, lines)) + overwritten
    if kind == "error":
        lines = "\n".join(output.get("traceback", []) or []).split("\n")
        return [ln for ln in lines if ln.strip()], 0
    data = output.get("data", {}) or {}
    mime = _display_mime(data)
    if mime is None:
        return [], 0
    if mime == WIDGET_VIEW:
        lines = collapse_cr(_text(data.get("text/plain", "")))[0] or ["<widget>"]
        n = sum(map(is_progress, lines))
        model = (data.get(WIDGET_VIEW) or {}).get("model_id", "")
        if not n and model in progress_widgets:
            n = 1
        return lines, n
    if mime == "text/html":
        lines = html_lines(_text(data[mime]))
    elif mime == "text/markdown":
        lines = markdown_lines(_text(data[mime]))
    elif mime in ("text/plain", "text/latex", "application/javascript"):
        text = _text(data[mime]).replace("\r\n", "\n")
        lines = [ln for ln in text.split("\n")]
        while lines and not lines[-1].strip():
            lines.pop()
        cr = sum("\r" in ln for ln in lines)
        return lines, sum(map(is_progress, lines)) + cr
    else:
        return [], 0  # an image
    return lines, sum(map(is_progress, lines))


def _is_empty(output) -> bool:
    kind = output.get("output_type")
    if kind == "stream":
        return not _text(output.get("text", "")).strip()
    if kind in ("display_data", "execute_result"):
        data = output.get("data", {}) or {}
        return not any(_text(v).strip() for v in data.values())
    return False


def output_kind(output, progress_widgets: set[str]) -> str:
    """table, verdict, stream, progress, widget, text, image or error (see the docstring)."""
    kind = output.get("output_type")
    if kind == "error":
        return "error"
    if kind == "stream":
        lines, overwritten = collapse_cr(_text(output.get("text", "")))
        first = next((ln for ln in lines if ln.strip()), "")
        return "progress" if overwritten or is_progress(first) else "stream"
    data = output.get("data", {}) or {}
    if WIDGET_VIEW in data:
        _, n = output_lines(output, progress_widgets)
        return "progress" if n else "widget"
    html_text = _text(data.get("text/html", ""))
    md_text = _text(data.get("text/markdown", ""))
    if "<table" in html_text.lower() or any(
        _MD_TABLE_SEP_RE.match(ln) for ln in md_text.split("\n")
    ):
        return "table"
    rendered = markdown_lines(md_text) + html_lines(html_text)
    if any(_is_verdict_line(ln) for ln in rendered):
        return "verdict"
    if any(m.startswith("image/") or m == "application/pdf" for m in data):
        return "image"
    plain = collapse_cr(_text(data.get("text/plain", "")))[0]
    if plain and is_progress(plain[0]):
        return "progress"
    return "text"


def _png_dpi(raw: bytes) -> float | None:
    """Horizontal resolution from a PNG's pHYs chunk (None when absent or not per metre)."""
    if raw[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    pos = 8
    while pos + 8 <= len(raw):
        length, ctype = struct.unpack(">I4s", raw[pos : pos + 8])
        if ctype == b"pHYs" and length >= 9:
            ppu_x, _, unit = struct.unpack(">IIB", raw[pos + 8 : pos + 17])
            return round(ppu_x * 0.0254, 1) if unit == 1 else None
        if ctype in (b"IDAT", b"IEND"):
            return None
        pos += 12 + length
    return None


def _png_size(raw: bytes) -> tuple[int, int] | None:
    if raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR":
        return struct.unpack(">II", raw[16:24])
    return None


def _check(name: str, value, limit, passed: bool, detail: str = "") -> dict:
    return {"name": name, "value": value, "limit": limit, "passed": bool(passed), "detail": detail}


def _cell_label(index: int, cell) -> str:
    count = cell.get("execution_count")
    return f"cell {index}" + (f" [In {count}]" if count is not None else "")


def size_breakdown(path: Path, nb) -> dict:
    """Where a notebook's bytes are (JSON text lengths, nbformat's 1-space indent)."""

    def size(obj) -> int:
        return len(json.dumps(obj, indent=1, ensure_ascii=False).encode())

    widgets = nb.get("metadata", {}).get("widgets", {})
    state = widgets.get(WIDGET_STATE, {}).get("state", {})
    models: dict[str, int] = {}
    for v in state.values():
        name = str(v.get("model_name", "?"))
        models[name] = models.get(name, 0) + 1
    by_kind: dict[str, int] = {}
    cells = []
    for i, cell in enumerate(nb.cells):
        outs = cell.get("outputs", []) or []
        for out in outs:
            kind = out.get("output_type", "?")
            if kind in ("display_data", "execute_result"):
                for mime, value in (out.get("data") or {}).items():
                    by_kind[mime] = by_kind.get(mime, 0) + len(_text(value).encode())
            else:
                by_kind[kind] = by_kind.get(kind, 0) + size(out)
        if outs:
            cells.append({"cell": _cell_label(i, cell), "bytes": size(outs), "outputs": len(outs)})
    cells.sort(key=lambda c: -c["bytes"])
    return {
        "file_bytes": path.stat().st_size,
        "widget_state_bytes": size(widgets) if widgets else 0,
        "widget_models": sum(models.values()),
        "widget_model_kinds": dict(sorted(models.items(), key=lambda kv: -kv[1])),
        "progress_bars_in_state": models.get("FloatProgressModel", 0)
        + models.get("IntProgressModel", 0),
        "outputs_bytes": sum(size(c.get("outputs", [])) for c in nb.cells),
        "outputs_bytes_by_kind": dict(sorted(by_kind.items(), key=lambda kv: -kv[1])),
        "source_bytes": sum(len(_text(c.get("source", "")).encode()) for c in nb.cells),
        "largest_cell_outputs": cells[:3],
    }


def check_notebook(
    path: Path,
    *,
    max_output_lines: int = MAX_OUTPUT_LINES,
    max_bytes: int = MAX_NOTEBOOK_BYTES,
    max_dpi: float = MAX_FIGURE_DPI,
) -> dict:
    """The file checks of one notebook: ``{"notebook", "path", "checks", "passed", ...}``."""
    path = Path(path)
    nb = load_notebook(path)
    progress_widgets = _progress_widget_ids(nb)
    checks = []

    size = path.stat().st_size
    checks.append(_check("size_bytes", size, max_bytes, size <= max_bytes))

    worst, worst_cell, worst_detail, frozen, frozen_where = 0, "", "", 0, []
    first_kind, first_where = "none", ""
    payloads: dict[str, list[str]] = {}
    extra_formats, extra_where, dpis, images = 0, [], [], []
    for i, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        label = _cell_label(i, cell)
        cell_lines, cell_frozen, parts = 0, 0, {}
        for out in cell.get("outputs", []) or []:
            lines, n_progress = output_lines(out, progress_widgets)
            cell_lines += len(lines)
            kind = out.get("output_type", "?")
            if kind in ("display_data", "execute_result"):
                kind = _display_mime(out.get("data", {}) or {}) or kind
                kind = "widget" if kind == WIDGET_VIEW else kind
            parts[kind] = parts.get(kind, 0) + len(lines)
            cell_frozen += n_progress
            if first_kind == "none" and INJECTED_TAG not in _tags(cell) and not _is_empty(out):
                first_kind, first_where = output_kind(out, progress_widgets), label
            data = out.get("data", {}) or {}
            formats = [m for m in FIGURE_MIMES if m in data]
            if len(formats) > 1:
                extra_formats += len(formats) - 1
                extra_where.append(f"{label}: {'+'.join(formats)}")
            for mime in formats:
                payload = re.sub(r"\s+", "", _text(data[mime]))
                digest = hashlib.sha1(payload.encode()).hexdigest()
                payloads.setdefault(digest, []).append(label)
                if mime == "image/png":
                    with contextlib.suppress(ValueError, struct.error):
                        raw = base64.b64decode(payload)
                        dpi, wh = _png_dpi(raw), _png_size(raw)
                        images.append({"cell": label, "bytes": len(raw), "size": wh, "dpi": dpi})
                        if dpi is not None:
                            dpis.append(dpi)
        if cell_frozen:
            frozen += cell_frozen
            frozen_where.append(f"{label}: {cell_frozen}")
        if cell_lines > worst:
            worst, worst_cell = cell_lines, label
            worst_detail = ", ".join(f"{k} {v}" for k, v in parts.items() if v)
    checks.append(
        _check(
            "max_output_lines",
            worst,
            max_output_lines,
            worst <= max_output_lines,
            f"{worst_cell} ({worst_detail})" if worst else "",
        )
    )
    checks.append(_check("frozen_progress", frozen, 0, frozen == 0, "; ".join(frozen_where[:5])))
    checks.append(
        _check(
            "first_output_is_result",
            first_kind,
            "table|verdict",
            first_kind in ("table", "verdict"),
            first_where,
        )
    )
    repeats = sum(len(v) - 1 for v in payloads.values())
    dup_detail = [
        f"{len(v)}x in {', '.join(sorted(set(v)))}" for v in payloads.values() if len(v) > 1
    ]
    checks.append(
        _check(
            "duplicate_images",
            repeats + extra_formats,
            0,
            repeats + extra_formats == 0,
            "; ".join(dup_detail + extra_where),
        )
    )
    top_dpi = max(dpis) if dpis else None
    checks.append(
        _check(
            "max_figure_dpi",
            top_dpi,
            max_dpi,
            top_dpi is None or top_dpi <= max_dpi,
            f"{len(images)} PNG output(s)" if images else "no PNG outputs",
        )
    )
    injected = [(i, c) for i, c in enumerate(nb.cells) if INJECTED_TAG in _tags(c)]
    if not injected:
        value, ok, detail = "absent", True, ""
    else:
        bad = []
        for i, cell in injected:
            meta = cell.get("metadata", {}).get("jupyter", {}) or {}
            if not (meta.get("source_hidden") or meta.get("outputs_hidden")):
                bad.append(_cell_label(i, cell))
        value, ok = ("not collapsed", False) if bad else ("collapsed", True)
        detail = ", ".join(bad) + (": metadata.jupyter.source_hidden is not set" if bad else "")
    checks.append(_check("injected_cell_collapsed", value, "collapsed", ok, detail))

    return {
        "notebook": path.name,
        "path": str(path),
        "checks": checks,
        "passed": all(c["passed"] for c in checks),
        "size_breakdown": size_breakdown(path, nb),
        "images": images,
    }


# ---------------------------------------------------------------------------------------
# rendering

# Added to the rendered page: when the DOM is ready, write what a reader sees of every
# output (innerText honours CSS: hidden elements and scripts give no text; a table gives one
# line per row) into a script element, as URI-encoded JSON, that --dump-dom brings back.
DOM_PROBE = """
<script>
document.addEventListener('DOMContentLoaded', function () {
  var cells = [];
  document.querySelectorAll('.jp-Cell').forEach(function (cell, index) {
    var outputs = [];
    cell.querySelectorAll('.jp-OutputArea-output').forEach(function (el) {
      var child = el.closest('.jp-OutputArea-child');
      outputs.push({
        mime: el.getAttribute('data-mime-type') || '',
        execute_result: !!(child && child.classList.contains('jp-OutputArea-executeResult')),
        widget: el.classList.contains('jupyter-widgets'),
        table: !!el.querySelector('table'),
        text: el.innerText || ''
      });
    });
    cells.push({index: index, classes: cell.className, outputs: outputs});
  });
  var out = document.createElement('script');
  out.type = 'application/json';
  out.id = 'nbcheck-dom';
  out.textContent = encodeURIComponent(JSON.stringify(cells));
  document.body.appendChild(out);
});
</script>
"""


def render_html(path: Path) -> str:
    """The notebook as nbconvert's ``lab`` template renders it, collapsed cells collapsed (as
    JupyterLab shows them), with :data:`DOM_PROBE` added."""
    from nbconvert import HTMLExporter

    nb = load_notebook(path)
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("jupyter", {}) or {}
        if meta.get("source_hidden"):
            cell.metadata.setdefault("transient", {})["remove_source"] = True
        if meta.get("outputs_hidden") and cell.get("cell_type") == "code":
            cell.outputs = []
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    if "</body>" in body:
        head, tail = body.rsplit("</body>", 1)
        return head + DOM_PROBE + "</body>" + tail
    return body + DOM_PROBE


def _chromium_args(chromium: str, profile: str) -> list[str]:
    return [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        # offline and deterministic: the template's CDN scripts fail at once
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}",
    ]


def run_chromium(chromium: str, html_file: Path, *extra: str) -> str:
    with tempfile.TemporaryDirectory(prefix="nbcheck-profile-") as profile:
        args = _chromium_args(chromium, profile) + list(extra) + [html_file.resolve().as_uri()]
        try:
            proc = subprocess.run(
                args, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            raise UsageError(
                f"chromium did not finish {html_file.name} in {CHROMIUM_TIMEOUT_S} s"
            ) from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise UsageError(f"chromium failed on {html_file.name} (exit {proc.returncode}): {last}")
    return proc.stdout


def dump_dom(chromium: str, html_file: Path) -> list[dict]:
    """What :data:`DOM_PROBE` saw: one entry per cell with its outputs' visible text."""
    dom = run_chromium(chromium, html_file, "--dump-dom")
    match = re.search(
        r'<script type="application/json" id="nbcheck-dom">(.*?)</script>', dom, re.DOTALL
    )
    if not match:
        raise UsageError(f"chromium's DOM of {html_file.name} has no probe result")
    return json.loads(urllib.parse.unquote(match.group(1).strip()))


def screenshot(chromium: str, html_file: Path, png: Path) -> None:
    png.parent.mkdir(parents=True, exist_ok=True)
    run_chromium(
        chromium, html_file, f"--screenshot={png.resolve()}", f"--window-size={WINDOW_SIZE}"
    )
    if not png.is_file():
        raise UsageError(f"chromium wrote no screenshot to {png}")


def dom_checks(cells: list[dict], *, max_output_lines: int = MAX_OUTPUT_LINES) -> list[dict]:
    """The rendered-page checks from :func:`dump_dom`'s result."""
    worst, worst_cell, frozen, first_kind, first_where = 0, "", 0, "none", ""
    for cell in cells:
        injected = f"celltag_{INJECTED_TAG}" in cell.get("classes", "")
        n = 0
        for out in cell.get("outputs", []):
            lines = [ln for ln in out.get("text", "").split("\n") if ln.strip()]
            n += len(lines)
            frozen += sum(map(is_progress, lines))
            if first_kind == "none" and not injected and lines:
                first_where = f"cell {cell['index']}"
                if out.get("table"):
                    first_kind = "table"
                elif out.get("mime") in ("text/markdown", "text/html") and any(
                    _is_verdict_line(ln) for ln in lines
                ):
                    first_kind = "verdict"
                elif is_progress(lines[0]):
                    first_kind = "progress"
                else:
                    first_kind = "text"
        if n > worst:
            worst, worst_cell = n, f"cell {cell['index']}"
    return [
        _check(
            "dom_max_output_lines", worst, max_output_lines, worst <= max_output_lines, worst_cell
        ),
        _check("dom_frozen_progress", frozen, 0, frozen == 0),
        _check(
            "dom_first_output_is_result",
            first_kind,
            "table|verdict",
            first_kind in ("table", "verdict"),
            first_where,
        ),
    ]


# ---------------------------------------------------------------------------------------
# report


def _value(report: dict, name: str):
    for c in report["checks"]:
        if c["name"] == name:
            return c["value"]
    return None


def _mark(report: dict, name: str) -> str:
    for c in report["checks"]:
        if c["name"] == name:
            value = c["value"]
            text = "-" if value is None else str(value)
            return text if c["passed"] else text + " !"
    return "-"


def format_table(reports: list[dict]) -> str:
    headers = [
        "notebook", "size KB", "lines", "dom lines", "frozen", "first output", "dup img",
        "dpi", "injected", "result",
    ]  # fmt: skip
    rows = []
    for r in reports:
        size = _value(r, "size_bytes") or 0
        size_ok = next(c["passed"] for c in r["checks"] if c["name"] == "size_bytes")
        frozen = _mark(r, "frozen_progress")
        if _value(r, "dom_frozen_progress") is not None:
            frozen += f" (dom {_value(r, 'dom_frozen_progress')})"
        first = _mark(r, "first_output_is_result")
        if _value(r, "dom_first_output_is_result") is not None:
            first += f" (dom {_value(r, 'dom_first_output_is_result')})"
        rows.append(
            [
                r["notebook"],
                f"{size / 1000:.0f}" + ("" if size_ok else " !"),
                _mark(r, "max_output_lines"),
                _mark(r, "dom_max_output_lines"),
                frozen,
                first,
                _mark(r, "duplicate_images"),
                _mark(r, "max_figure_dpi"),
                _mark(r, "injected_cell_collapsed"),
                "PASS" if r["passed"] else "FAIL",
            ]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def format_failures(reports: list[dict]) -> str:
    out = []
    for r in reports:
        for c in r["checks"]:
            if c["passed"]:
                continue
            line = f"{r['notebook']}: {c['name']} = {c['value']} (limit {c['limit']})"
            if c["detail"]:
                line += f" -- {c['detail']}"
            out.append(line)
            if c["name"] == "size_bytes":
                b = r["size_breakdown"]
                kinds = ", ".join(
                    f"{k} {v / 1000:.0f} KB"
                    for k, v in list(b["outputs_bytes_by_kind"].items())[:4]
                )
                out.append(
                    f"    widget state {b['widget_state_bytes'] / 1000:.0f} KB "
                    f"({b['widget_models']} models, {b['progress_bars_in_state']} progress bars); "
                    f"outputs {b['outputs_bytes'] / 1000:.0f} KB ({kinds}); "
                    f"sources {b['source_bytes'] / 1000:.0f} KB"
                )
    return "\n".join(out)


def find_notebooks(paths: Iterable[str]) -> list[Path]:
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(q for q in p.glob("*.ipynb") if not q.name.startswith("."))
        elif p.is_file() and p.suffix == ".ipynb":
            found.append(p)
        else:
            raise UsageError(f"{p}: no such directory or .ipynb file")
    if not found:
        raise UsageError(f"no .ipynb files in {', '.join(map(str, paths))}")
    return found


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="notebook_check.py",
        description="Render executed notebooks and check what a reader sees (see the module "
        "docstring for the exact definitions).",
    )
    ap.add_argument("paths", nargs="+", help="results/<params>/executed (or .ipynb files)")
    ap.add_argument("--max-output-lines", type=int, default=MAX_OUTPUT_LINES, metavar="N")
    ap.add_argument("--max-bytes", type=int, default=MAX_NOTEBOOK_BYTES, metavar="N")
    ap.add_argument("--max-dpi", type=float, default=MAX_FIGURE_DPI, metavar="DPI")
    ap.add_argument("--browser", action=argparse.BooleanOptionalAction, default=True,
                    help="render in headless chromium and check the DOM too (default: on)")  # fmt: skip
    ap.add_argument("--chromium", default=CHROMIUM, metavar="PATH")
    ap.add_argument("--screenshot", type=Path, metavar="PNG",
                    help=f"screenshot ({WINDOW_SIZE} px) of one rendered notebook")  # fmt: skip
    ap.add_argument("--screenshot-notebook", metavar="NAME",
                    help="which notebook to screenshot (default: the first)")  # fmt: skip
    ap.add_argument("--html-dir", type=Path, metavar="DIR",
                    help="keep the rendered HTML here (default: a temporary directory)")  # fmt: skip
    ap.add_argument("--json", type=Path, metavar="FILE", help="write the full report as JSON")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse: 2 on a usage error, 0 for --help
        return int(exc.code or 0)
    try:
        return _main(args)
    except UsageError as exc:
        print(f"notebook_check: {exc}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    try:
        import nbconvert  # noqa: F401
        import nbformat  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            f"{exc.name} is missing: pip install nbconvert (brings nbformat)"
        ) from None
    notebooks = find_notebooks(args.paths)
    shot = None
    if args.screenshot:
        if not args.browser:
            raise UsageError("--screenshot needs the browser (drop --no-browser)")
        name = args.screenshot_notebook or notebooks[0].name
        shot = next((nb for nb in notebooks if nb.name == name), None)
        if shot is None:
            raise UsageError(
                f"--screenshot-notebook {name}: not among {[n.name for n in notebooks]}"
            )
    elif args.screenshot_notebook:
        raise UsageError("--screenshot-notebook needs --screenshot PNG")
    if args.browser and not (os.path.isfile(args.chromium) and os.access(args.chromium, os.X_OK)):
        raise UsageError(
            f"chromium not found at {args.chromium}: install it with "
            "`apt-get install -y chromium` (Debian/Ubuntu), or pass --no-browser"
        )

    reports = []
    with contextlib.ExitStack() as stack:
        html_dir = args.html_dir
        if html_dir is None:
            html_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nbcheck-")))
        html_dir.mkdir(parents=True, exist_ok=True)
        for path in notebooks:
            report = check_notebook(
                path,
                max_output_lines=args.max_output_lines,
                max_bytes=args.max_bytes,
                max_dpi=args.max_dpi,
            )
            if args.browser or args.html_dir:
                html_file = html_dir / (path.stem + ".html")
                try:
                    html_file.write_text(render_html(path), encoding="utf-8")
                except Exception as exc:  # nbconvert: a template or notebook it cannot render
                    raise UsageError(f"nbconvert could not render {path}: {exc}") from exc
                report["html"] = str(html_file) if args.html_dir else None
                if args.browser:
                    report["checks"] += dom_checks(
                        dump_dom(args.chromium, html_file), max_output_lines=args.max_output_lines
                    )
                    report["passed"] = all(c["passed"] for c in report["checks"])
                if shot is not None and path == shot:
                    screenshot(args.chromium, html_file, args.screenshot)
            reports.append(report)
            print(f"checked {path.name}", file=sys.stderr)

    print(format_table(reports))
    failures = format_failures(reports)
    if failures:
        print("\n" + failures)
    if shot is not None:
        print(f"\nscreenshot of {shot.name}: {args.screenshot}")
    passed = all(r["passed"] for r in reports)
    print(f"\n{sum(r['passed'] for r in reports)}/{len(reports)} notebooks pass "
          f"(limits: {args.max_output_lines} lines per cell output, {args.max_bytes} bytes, "
          f"{args.max_dpi:g} dpi)")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        limits = {
            "max_output_lines": args.max_output_lines,
            "max_bytes": args.max_bytes,
            "max_dpi": args.max_dpi,
        }
        doc = {
            "passed": passed,
            "limits": limits,
            "browser": bool(args.browser),
            "screenshot": str(args.screenshot) if shot is not None else None,
            "notebooks": reports,
        }
        args.json.write_text(json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
