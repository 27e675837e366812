"""The study's stage graph: every cached stage, what it reads, which knobs change it, where
its output lives and when it is done.

    dataset ─► rawframes ─► stream (spatial|temporal, split) ─► features (stream, split, tap)
                                                                       │
                                              head (split, layer, method, layers, kernel) ◄┘

==========  =====================================  ==================================  ==============================
stage       output                                 reads                               done when
==========  =====================================  ==================================  ==============================
dataset     ``<data>/<dataset>/{videos,splits}``   -                                   synthetic.json matches / files present
rawframes   ``<data>/<dataset>/rawframes/``        dataset                             every video's marker matches
stream      ``runs/<stream>-split<k>-<key>/``      rawframes                           results.json complete
features    ``features/<stream>-<backbone>-<tap>-split<k>-<key>/``   stream            manifest complete, same checkpoint
head        ``runs/<kind>-split<k>-<layer>-<method>-<arch>-<key>/``  features x 2      results.json complete
==========  =====================================  ==================================  ==============================

A node's ``key`` hashes the StudyConfig fields declared for its stage (``config.knob``), its
arguments and the keys of the nodes it reads, so changing a knob re-runs exactly the stages
downstream of it. :func:`ensure` builds a node after its inputs, under a lock on its output
(a second process waits, then reuses the result); :func:`plan` lists every node a study
needs with its status, without computing anything (``twostream plan --params FILE``).
The notebooks build what they need only through :func:`streams`, :func:`features` and
:func:`head`.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import distributed as dist
from .config import StudyConfig, add_config_arguments, config_from_args, stage_fields, to_jsonable
from .errors import UserError
from .rundir import RunDir
from .utils import stage_lock

STREAM_NAMES = ("spatial", "temporal")


@dataclass(frozen=True)
class Node:
    """One cached unit of work: a stage and its arguments (sorted name/value pairs)."""

    stage: str
    args: tuple[tuple[str, Any], ...] = ()

    def get(self, name: str) -> Any:
        return dict(self.args)[name]

    def __str__(self) -> str:
        a = dict(self.args)
        if self.stage == "stream":
            return f"stream {a['stream']}, split {a['split']}"
        if self.stage == "features":
            return f"features {a['stream']} {a['tap']}, split {a['split']}"
        if self.stage == "head":
            arch = f"{a['layers']} layer(s)" + (
                "" if a["layer"] == "fc" else f" {a['kernel']}x{a['kernel']}"
            )
            seed = f", seed {a['seed']}" if a.get("seed") else ""
            kind = {"tavg": "time-average "}.get(a.get("kind", ""), "")
            ctrl = "".join(f", {c.replace('_', ' ')}" for c in CONTROLS if a.get(c))
            return f"{kind}head {a['layer']}/{a['method']} {arch}, split {a['split']}{seed}{ctrl}"
        return self.stage


def _node(stage: str, **args: Any) -> Node:
    return Node(stage, tuple(sorted(args.items())))


def stream_node(stream: str, split: int) -> Node:
    return _node("stream", stream=stream, split=int(split))


def features_node(stream: str, split: int, tap: str) -> Node:
    return _node("features", stream=stream, split=int(split), tap=tap)


# Negative controls a head can be trained under (twostream.mechanisms): misalign = the
# temporal maps' grid cells permuted per video before fusion; permute_labels = the training
# videos' labels shuffled.
CONTROLS = ("misalign", "permute_labels")


def head_node(split: int, layer: str, method: str, layers: int, kernel: int,
              prefused: bool = False, seed: int = 0, *, kind: str | None = None,
              misalign: bool = False, permute_labels: bool = False) -> Node:  # fmt: skip
    """A head run. ``kind``: None = the layer's (ConvLSTM, ``fc``: FC-LSTM) or ``"tavg"``
    (time-average); the variants and controls enter the node (and its key) only when set,
    so the plain heads keep their keys."""
    if layer == "fc":
        kernel = 0  # the FC-LSTM has no kernel: one node whatever cfg.convlstm_kernel says
    extra: dict[str, Any] = {}
    if kind not in (None, "convlstm", "fclstm"):
        if kind != "tavg" or layer == "fc":
            raise UserError(f"head kind {kind!r} needs a convolutional tap (known: tavg)")
        extra["kind"] = kind
    if misalign:
        if layer == "fc":
            raise UserError("misalign permutes feature-map cells: it needs a convolutional tap")
        extra["misalign"], prefused = True, False
    if permute_labels:
        extra["permute_labels"] = True
    return _node("head", split=int(split), layer=layer, method=method, layers=int(layers),
                 kernel=int(kernel), prefused=bool(prefused), seed=int(seed), **extra)  # fmt: skip


def needs(node: Node) -> tuple[Node, ...]:
    """The nodes whose output ``node`` reads."""
    if node.stage == "dataset":
        return ()
    if node.stage == "rawframes":
        return (Node("dataset"),)
    if node.stage == "stream":
        return (Node("rawframes"),)
    if node.stage == "features":
        return (stream_node(node.get("stream"), node.get("split")),)
    if node.stage == "head":
        return tuple(features_node(s, node.get("split"), node.get("layer")) for s in STREAM_NAMES)
    raise UserError(f"unknown stage {node.stage!r}")


@functools.lru_cache(maxsize=4096)
def key(cfg: StudyConfig, node: Node) -> str:
    """8 hex digits: the node's stage fields, its arguments and its inputs' keys."""
    fields = stage_fields(node.stage)
    if node.stage == "dataset" and cfg.dataset != "synthetic":
        fields = ("dataset",)  # the synthetic set's knobs mean nothing for real data
    d = to_jsonable(cfg)
    payload = {
        "stage": node.stage,
        "fields": {f: d[f] for f in fields},
        "args": [list(a) for a in node.args],
        "needs": [key(cfg, n) for n in needs(node)],
    }
    return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:8]


def output(cfg: StudyConfig, node: Node) -> Path:
    """Where ``node``'s output lives."""
    a, k = dict(node.args), key(cfg, node)
    if node.stage == "dataset":
        return cfg.dataset_dir
    if node.stage == "rawframes":
        return cfg.rawframes_dir
    if node.stage == "stream":
        return cfg.runs_dir / f"{a['stream']}-split{a['split']}-{k}"
    if node.stage == "features":
        return cfg.features_dir / f"{a['stream']}-{cfg.backbone}-{a['tap']}-split{a['split']}-{k}"
    from .heads import head_kind

    arch = f"l{a['layers']}" if a["layer"] == "fc" else f"l{a['layers']}k{a['kernel']}"
    arch += f"-s{a['seed']}" if a.get("seed") else ""
    arch += "".join(f"-{c.replace('_', '')}" for c in CONTROLS if a.get(c))
    kind = a.get("kind") or head_kind(a["layer"])
    return cfg.runs_dir / f"{kind}-split{a['split']}-{a['layer']}-{a['method']}-{arch}-{k}"


def head_config(cfg: StudyConfig, node: Node) -> StudyConfig:
    """The resolved config of a head run: its arguments written into the fields they set."""
    a = dict(node.args)
    return cfg.replace(split=a["split"], fusion_layer=a["layer"], fusion_method=a["method"],
                       convlstm_layers=a["layers"],
                       convlstm_kernel=a["kernel"] or cfg.convlstm_kernel)  # fmt: skip


# ----------------------------------------------------------------------------- done rules


def _stream_checkpoint(cfg: StudyConfig, stream: str, split: int) -> Path:
    return RunDir(output(cfg, stream_node(stream, split))).best_checkpoint


def _features_done(cfg: StudyConfig, node: Node, videos: Sequence[str] | None = None) -> bool:
    from .features import file_digest, missing_videos, read_cache_manifest

    folder = output(cfg, node)
    m = read_cache_manifest(folder) or {}
    if not m.get("complete"):
        return False
    ckpt = _stream_checkpoint(cfg, node.get("stream"), node.get("split"))
    if not ckpt.is_file() or m.get("checkpoint_sha1") != file_digest(ckpt):
        return False
    return not missing_videos(folder, videos if videos is not None else _cached_videos(cfg, node))


def _cached_videos(cfg: StudyConfig, node: Node) -> list[str]:
    return [r.path for r in feature_records(cfg, node.get("split"))]


def feature_records(cfg: StudyConfig, split: int) -> list:
    """Every video of the split (official train list, then test list) in the cache's order."""
    from .datasets import load_split

    train, test = load_split(cfg.split_format, cfg.splits_dir, split)
    return list(dict.fromkeys([*train, *test]))


def is_done(cfg: StudyConfig, node: Node) -> bool:
    """Does ``node``'s output exist, complete, for this config?"""
    if node.stage == "dataset":
        if cfg.dataset == "synthetic":
            from .synthetic_set import is_current, synth_params

            return is_current(cfg.dataset_dir, synth_params(cfg))
        return cfg.videos_dir.is_dir() and cfg.splits_dir.is_dir()
    if node.stage == "rawframes":
        if not is_done(cfg, Node("dataset")):
            return False
        from .prepare import rawframes_status

        done, todo = rawframes_status(cfg)
        return done > 0 and todo == 0
    if node.stage in ("stream", "head"):
        return RunDir(output(cfg, node)).is_finished()
    if node.stage == "features":
        if not is_done(cfg, stream_node(node.get("stream"), node.get("split"))):
            return False
        return _features_done(cfg, node)
    raise UserError(f"unknown stage {node.stage!r}")


# ----------------------------------------------------------------------------- running


def _run(cfg: StudyConfig, node: Node) -> None:
    """Compute ``node`` (its inputs exist)."""
    if node.stage == "dataset":
        from .synthetic_set import ensure_dataset

        ensure_dataset(cfg)
    elif node.stage == "rawframes":
        from .prepare import ensure_rawframes

        ensure_rawframes(cfg, show_progress=True)
    elif node.stage == "stream":
        from .streams import train_stream

        train_stream(cfg, stream=node.get("stream"), split=node.get("split"),
                     run=output(cfg, node), resume=True)  # fmt: skip
    elif node.stage == "features":
        _run_features(cfg, node.get("stream"), node.get("split"), [node.get("tap")])
    elif node.stage == "head":
        _run_head(cfg, node)


def _run_features(cfg: StudyConfig, stream: str, split: int, taps: Sequence[str]) -> None:
    """Extract the given taps of one stream in one forward pass (stale folders removed)."""
    from .features import extract_stream

    dirs = {tap: output(cfg, features_node(stream, split, tap)) for tap in taps}
    if dist.is_main():
        for d in dirs.values():  # made from another checkpoint: its files must not be kept
            if d.exists():
                shutil.rmtree(d)
    dist.barrier()
    extract_stream(cfg, stream=stream, records=feature_records(cfg, split),
                   checkpoint=_stream_checkpoint(cfg, stream, split), dirs=dirs)  # fmt: skip


def _run_head(cfg: StudyConfig, node: Node) -> None:
    from .datasets import load_classes
    from .features import prefuse
    from .heads import train_head
    from .streams import split_records

    hcfg = head_config(cfg, node)
    split = node.get("split")
    dirs = {s: output(cfg, features_node(s, split, node.get("layer"))) for s in STREAM_NAMES}
    records = split_records(hcfg, split)
    if node.get("prefused"):
        every = [r.path for recs in records.values() for r in recs]
        dirs = {"fused": prefuse(dirs, node.get("method"), every)}
    classes = list(load_classes(cfg.split_format, cfg.splits_dir))
    a = dict(node.args)
    train_head(hcfg, split=split, feature_dirs=dirs, records=records, classes=classes,
               run=output(cfg, node), seed=a["seed"], resume=True, kind=a.get("kind"),
               misalign=a.get("misalign", False),
               permute_labels=a.get("permute_labels", False))  # fmt: skip


def ensure(cfg: StudyConfig, node: Node) -> Path:
    """Build ``node`` after its inputs unless it is done; returns its output folder.

    The check and the computation happen under a lock on the output, so two processes that
    need the same node compute it once. Under torchrun the dataset and rawframes stages run
    on rank 0 only; the training stages run on every rank.
    """
    for n in needs(node):
        ensure(cfg, n)
    out = output(cfg, node)
    if is_done(cfg, node):
        return out
    single = node.stage in ("dataset", "rawframes") and dist.is_distributed()
    if not single or dist.is_main():
        with stage_lock(out, what=str(node)):
            if not is_done(cfg, node):
                _run(cfg, node)
    if single:
        dist.barrier()
    return out


# ----------------------------------------------------------------------------- for notebooks


def streams(cfg: StudyConfig, split: int | None = None) -> dict[str, RunDir]:
    """Both streams of ``split`` (default ``cfg.split``), trained when missing."""
    split = cfg.split if split is None else int(split)
    return {s: RunDir(ensure(cfg, stream_node(s, split))) for s in STREAM_NAMES}


def features(cfg: StudyConfig, split: int | None = None,
             taps: Sequence[str] | str | None = None) -> dict[str, dict[str, Path]]:  # fmt: skip
    """``{tap: {"spatial": folder, "temporal": folder}}`` of ``split``; the taps still
    missing for a stream are extracted together, in one forward pass."""
    from .features import check_taps

    split = cfg.split if split is None else int(split)
    taps = check_taps(taps or (cfg.fusion_layer,))
    out: dict[str, dict[str, Path]] = {tap: {} for tap in taps}
    for stream in STREAM_NAMES:
        ensure(cfg, stream_node(stream, split))
        nodes = {tap: features_node(stream, split, tap) for tap in taps}
        for tap, n in nodes.items():
            out[tap][stream] = output(cfg, n)
        group = (
            cfg.features_dir
            / f"{stream}-{cfg.backbone}-split{split}-{key(cfg, stream_node(stream, split))}"
        )
        with stage_lock(group, what=f"{stream} features of split {split}"):
            todo = [tap for tap, n in nodes.items() if not is_done(cfg, n)]
            if todo:
                _run_features(cfg, stream, split, todo)
    return out


def head(cfg: StudyConfig, *, split: int | None = None, layer: str | None = None,
         method: str | None = None, layers: int | None = None, kernel: int | None = None,
         prefuse: bool = False, seed: int | None = None, kind: str | None = None,
         misalign: bool = False, permute_labels: bool = False) -> dict[str, Any]:  # fmt: skip
    """One fusion + ConvLSTM (``layer="fc"``: FC-LSTM; ``kind="tavg"``: time-average) head,
    trained when missing; returns its results (``heads.load_head_run``). Arguments default
    to the config's fields; the seed to the first of ``cfg.head_seeds``; ``misalign`` /
    ``permute_labels`` train it under a negative control (:data:`CONTROLS`)."""
    from .features import check_taps
    from .fusion import check_fusion, is_parameter_free
    from .heads import load_head_run

    split = cfg.split if split is None else int(split)
    layer = check_taps([layer or cfg.fusion_layer])[0]
    method = check_fusion(method or cfg.fusion_method)
    node = head_node(split, layer, method, layers or cfg.convlstm_layers,
                     kernel or cfg.convlstm_kernel, prefuse and is_parameter_free(method),
                     cfg.head_seeds[0] if seed is None else seed, kind=kind,
                     misalign=misalign, permute_labels=permute_labels)  # fmt: skip
    features(cfg, split, [layer])  # both streams' taps in one pass each
    return load_head_run(ensure(cfg, node))


# ----------------------------------------------------------------------------- the plan


def study_nodes(cfg: StudyConfig) -> list[tuple[str, Node]]:
    """(why, node) for every node the notebooks of a study build before Table 3, in build
    order (Table 3 and the audit use Table 1's cell chosen on validation: see :func:`plan`)."""
    out: list[tuple[str, Node]] = [("data set", Node("dataset")), ("rawframes", Node("rawframes"))]
    splits = sorted({cfg.split, *cfg.splits})
    for split in splits:
        out += [(f"streams, split {split}", stream_node(s, split)) for s in STREAM_NAMES]
    from .features import needed_taps

    taps = needed_taps(cfg)  # only the taps a head of Table 1 or 2 reads
    out += [("feature cache", features_node(s, cfg.split, t)) for t in taps for s in STREAM_NAMES]
    for layer in cfg.table1_layers:
        for method in cfg.table1_methods:
            out += [("Table 1", head_node(cfg.split, layer, method, cfg.convlstm_layers,
                                          cfg.convlstm_kernel, seed=seed))
                    for seed in cfg.head_seeds]  # fmt: skip
    for layers in cfg.table2_layers:
        for kernel in cfg.table2_kernels:
            out += [("Table 2", head_node(cfg.split, cfg.fusion_layer, cfg.fusion_method, layers,
                                          kernel, seed=seed))
                    for seed in cfg.head_seeds]  # fmt: skip
    return out


def mechanism_nodes(cfg: StudyConfig) -> list[tuple[str, Node]]:
    """(why, node) of what notebook 07's mechanism checks train (synthetic set v3 only): both
    streams, the designed cell's and fc's features and every head of
    :func:`twostream.mechanisms.head_specs`, on every split."""
    from .features import check_taps
    from .mechanisms import applies, head_specs

    if not applies(cfg):
        return []
    out: list[tuple[str, Node]] = []
    for split in cfg.splits:
        out += [(f"streams, split {split}", stream_node(s, split)) for s in STREAM_NAMES]
        taps = check_taps([cfg.fusion_layer, "fc"])
        out += [("mechanisms", features_node(s, split, t)) for t in taps for s in STREAM_NAMES]
        for kw in head_specs(cfg).values():
            kw = dict(kw)
            layer, method = kw.pop("layer"), kw.pop("method")
            out += [("mechanisms", head_node(split, layer, method, cfg.convlstm_layers,
                                             cfg.convlstm_kernel, seed=seed, **kw))
                    for seed in cfg.head_seeds]  # fmt: skip
    return out


def table3_nodes(cfg: StudyConfig, chosen: dict) -> list[tuple[str, Node, StudyConfig]]:
    """(why, node, config) of Table 3 and the audit at the ``chosen`` Table 1 cell: the
    two-stream and single-stream ConvLSTMs and the authors-protocol runs, every split."""
    layer, method = chosen["layer"], chosen["method"]
    authors = cfg.replace(protocol="authors")
    out = []
    for split in cfg.splits:
        out += [("features, Table 3", features_node(s, split, layer), cfg) for s in STREAM_NAMES]
        for seed in cfg.head_seeds:
            for m in (method, "spatial", "temporal"):
                node = head_node(
                    split, layer, m, cfg.convlstm_layers, cfg.convlstm_kernel, seed=seed
                )
                out.append(("Table 3", node, cfg))
            node = head_node(
                split, layer, method, cfg.convlstm_layers, cfg.convlstm_kernel, seed=seed
            )
            out.append(("audit (epoch chosen on test)", node, authors))
    return out


def plan(cfg: StudyConfig) -> list[dict[str, str]]:
    """Every node of the study with its folder and status (``cached`` or ``to run``),
    without computing anything. Nodes that two tables share are listed once."""
    return [row for row, _, _ in plan_entries(cfg)]


def plan_entries(cfg: StudyConfig) -> list[tuple[dict[str, str], Node | None, StudyConfig]]:
    """:func:`plan`'s rows with the node and config of each (``None`` for the Table 3 + audit
    placeholder listed while Table 1's chosen cell is not known): what ``twostream.costs``
    prices."""
    rows, seen = [], set()

    def add(why: str, node: Node, c: StudyConfig) -> None:
        if (node, c) in seen:
            return
        seen.add((node, c))
        rows.append(({"stage": node.stage, "for": why, "what": str(node) + (
                      " (authors' protocol)" if c.protocol == "authors" else ""),
                      "status": "cached" if is_done(c, node) else "to run",
                      "output": str(output(c, node))}, node, c))  # fmt: skip

    for why, node in [*study_nodes(cfg), *mechanism_nodes(cfg)]:
        add(why, node, cfg)
    table1 = [n for why, n in study_nodes(cfg) if why == "Table 1"]
    if not all(is_done(cfg, n) for n in table1):  # the chosen cell is not known yet
        rows.append(({"stage": "head", "for": "Table 3 + audit",
                      "what": f"the Table 1 cell chosen on validation, splits {list(cfg.splits)}",
                      "status": "after Table 1", "output": str(cfg.runs_dir)}, None, cfg))  # fmt: skip
        return rows
    from .study import chosen_cell

    for why, node, c in table3_nodes(cfg, chosen_cell(cfg)):
        add(why, node, c)
    return rows


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def cli_main(args: argparse.Namespace) -> int:
    from .costs import format_plan, plan_costs

    cfg = config_from_args(args)
    entries = plan_entries(cfg)
    rows = [r for r, _, _ in entries]
    source = args.params or "the test preset (StudyConfig defaults)"
    print(f"plan for {source}: data set {cfg.dataset}, data in {cfg.dataset_dir}")
    pc = plan_costs(cfg, entries)
    for line in format_plan(pc):
        print(line)
    cached = sum(r["status"] == "cached" for r in rows)
    print(f"{len(rows)} stages: {cached} cached, {len(rows) - cached} to run")
    return 0


__all__ = [
    "CONTROLS",
    "Node",
    "ensure",
    "features",
    "features_node",
    "head",
    "head_config",
    "head_node",
    "is_done",
    "key",
    "needs",
    "output",
    "plan",
    "plan_entries",
    "stream_node",
    "streams",
    "study_nodes",
]
