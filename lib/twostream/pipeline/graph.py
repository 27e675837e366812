"""The study's stage graph: every cached stage, what it reads, which knobs change it, where
its output lives and when it is done.

    dataset ─► rawframes ─► stream (spatial|temporal, split, seed) ─► features (stream, split, tap, seed)
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

Stream seeds (``cfg.stream_seeds``): a stream node and its features nodes carry ``seed``, a
head ``stream_seed`` (the seed of the streams it reads), each only when non-zero, so seed 0
keeps its keys and folders; a non-zero seed adds ``-s<seed>`` (``-ss<seed>`` on a head) to
the folder's name (:mod:`twostream.pipeline.run_names`).

A node's ``key`` hashes the StudyConfig fields declared for its stage (``config.knob``), its
arguments and the keys of the nodes it reads, so changing a knob re-runs exactly the stages
downstream of it. :func:`ensure` builds a node after its inputs, under a lock on its output
(a second process waits, then reuses the result); :func:`plan` lists every node a study
needs with its status, without computing anything (``twostream plan --params FILE``).
The notebooks build what they need only through :func:`streams`, :func:`features` and
:func:`head`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twostream.core.config import (
    OMIT,
    StudyConfig,
    key_value,
    stage_fields,
    to_jsonable,
)
from twostream.core.errors import UserError
from twostream.core.names import MAP_HEAD_KINDS, MISALIGN_MODES, check_train_state
from twostream.core.names import STREAMS as STREAM_NAMES
from twostream.core.runtime import stage_lock
from twostream.data.splits import load_classes, load_split, split_records
from twostream.models.fusion import check_fusion, is_parameter_free
from twostream.pipeline import run_names
from twostream.prepare.run import ensure_rawframes, rawframes_status
from twostream.synthetic.writer import ensure_dataset, is_current, synth_params
from twostream.train import distributed as dist
from twostream.train.features import (
    check_taps,
    clear_stale_cache,
    extract_stream,
    file_digest,
    missing_videos,
    prefuse,
    read_cache_manifest,
)
from twostream.train.head_trainer import head_kind, load_head_run, train_head
from twostream.train.rundir import RunDir
from twostream.train.stream_trainer import train_stream


@dataclass(frozen=True)
class Node:
    """One cached unit of work: a stage and its arguments (sorted name/value pairs)."""

    stage: str
    args: tuple[tuple[str, Any], ...] = ()

    def get(self, name: str) -> Any:
        return dict(self.args)[name]

    def __str__(self) -> str:
        a = dict(self.args)
        sseed = f", stream seed {a['seed']}" if a.get("seed") else ""
        if self.stage == "stream":
            return f"stream {a['stream']}, split {a['split']}{sseed}"
        if self.stage == "features":
            return f"features {a['stream']} {a['tap']}, split {a['split']}{sseed}"
        if self.stage == "head":
            arch = f"{a['layers']} layer(s)" + (
                "" if a["layer"] == "fc" or not a["kernel"] else f" {a['kernel']}x{a['kernel']}"
            )
            seed = f", seed {a['seed']}" if a.get("seed") else ""
            seed += f", stream seed {a['stream_seed']}" if a.get("stream_seed") else ""
            kind = {"tavg": "time-average ", "pooled": "pooled-maps LSTM "}.get(
                a.get("kind", ""), ""
            )
            ctrl = "".join(f", {c.replace('_', ' ')}" for c in CONTROLS if a.get(c))
            ctrl += f" ({a['misalign']})" if isinstance(a.get("misalign"), str) else ""
            if a.get("train_state") == "carried":
                ctrl += ", trained with carried state"
            return f"{kind}head {a['layer']}/{a['method']} {arch}, split {a['split']}{seed}{ctrl}"
        return self.stage


def _node(stage: str, **args: Any) -> Node:
    return Node(stage, tuple(sorted(args.items())))


def _seeded(seed: int) -> dict[str, int]:
    """A stream seed as a node argument: present only when non-zero, so the nodes of stream
    seed 0 keep the keys (and run folders) they had before stream seeds existed."""
    return {"seed": int(seed)} if int(seed) else {}


def stream_node(stream: str, split: int, seed: int = 0) -> Node:
    """A stream run; ``seed``: its training seed (``stream_seeds``)."""
    return _node("stream", stream=stream, split=int(split), **_seeded(seed))


def features_node(stream: str, split: int, tap: str, seed: int = 0) -> Node:
    """A feature cache of the stream run of stream seed ``seed``."""
    return _node("features", stream=stream, split=int(split), tap=tap, **_seeded(seed))


# Negative controls a head can be trained under (twostream.study.mechanisms): misalign = the
# temporal maps moved before fusion (a mode of core.names.MISALIGN_MODES: "halves" swaps the
# grid's left and right halves in half of each class's videos, "cells" permutes the cells
# per video); permute_labels = the training videos' labels shuffled.
CONTROLS = ("misalign", "permute_labels")


def head_node(split: int, layer: str, method: str, layers: int, kernel: int,
              prefused: bool = False, seed: int = 0, *, kind: str | None = None,
              misalign: bool | str = False, permute_labels: bool = False,
              train_state: str = "reset", stream_seed: int = 0) -> Node:  # fmt: skip
    """A head run; ``seed``: its head seed, ``stream_seed``: the seed of the streams whose
    features it reads (an argument only when non-zero, as the variants below). ``kind``: None = the layer's (ConvLSTM, ``fc``: FC-LSTM), ``"tavg"``
    (time-average) or ``"pooled"`` (the FC-LSTM on the tap's maps pooled over space);
    ``misalign``: False or a mode of :data:`MISALIGN_MODES` (``True``: "cells", the first
    control, whose node it keeps); ``train_state``: "reset" (ours) or "carried" (the
    authors' training: batch of one video, the recurrent state carried across training
    videos; the run's config gets ``convlstm_batch_size`` 1, see :func:`head_config`). The
    variants and controls enter the node (and its key) only when set, so the plain heads
    keep their keys."""
    if layer == "fc" or kind == "pooled":
        kernel = 0  # the (pooled) FC-LSTM has no kernel: one node whatever cfg says
    extra: dict[str, Any] = {}
    if kind is not None and kind != head_kind(layer):
        if kind not in MAP_HEAD_KINDS or layer == "fc":
            raise UserError(f"head kind {kind!r} at tap {layer!r}: the fc tap reads an "
                            f"FC-LSTM, a convolutional tap a ConvLSTM or one of "
                            f"{', '.join(MAP_HEAD_KINDS)}")  # fmt: skip
        extra["kind"] = kind
    if misalign:
        if layer == "fc":
            raise UserError("misalign moves feature-map cells: it needs a convolutional tap")
        if misalign is not True and misalign not in MISALIGN_MODES:
            raise UserError(f"unknown misalign mode {misalign!r}; known: "
                            f"{', '.join(MISALIGN_MODES)}")  # fmt: skip
        extra["misalign"], prefused = misalign, False
    if permute_labels:
        extra["permute_labels"] = True
    if check_train_state(train_state) == "carried":
        if extra.get("kind") == "tavg":
            raise UserError("train_state 'carried' needs a recurrent head; tavg has none")
        extra["train_state"] = "carried"
    if int(stream_seed):
        extra["stream_seed"] = int(stream_seed)
    return _node("head", split=int(split), layer=layer, method=method, layers=int(layers),
                 kernel=int(kernel), prefused=bool(prefused), seed=int(seed), **extra)  # fmt: skip


def needs(node: Node, cfg: StudyConfig | None = None) -> tuple[Node, ...]:
    """The nodes whose output ``node`` reads. ``cfg`` says where the temporal stream starts
    (``temporal_init``): with "spatial" it reads the same split's spatial stream (the same
    node arguments, ``stream`` spatial), which is then built first and whose key enters the
    temporal stream's key; with "imagenet", or without a ``cfg``, the rawframes alone."""
    if node.stage == "dataset":
        return ()
    if node.stage == "rawframes":
        return (Node("dataset"),)
    if node.stage == "stream":
        if node.get("stream") == "temporal" and cfg is not None and cfg.temporal_init == "spatial":
            return (Node("rawframes"), _node("stream", **{**dict(node.args), "stream": "spatial"}))
        return (Node("rawframes"),)
    a = dict(node.args)
    if node.stage == "features":
        return (stream_node(a["stream"], a["split"], a.get("seed", 0)),)
    if node.stage == "head":
        return tuple(features_node(s, a["split"], a["layer"], a.get("stream_seed", 0))
                     for s in STREAM_NAMES)  # fmt: skip
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
        # flow_device: its type only; a knob at its omit_default value: left out
        "fields": {f: v for f in fields if (v := key_value(f, d[f])) != OMIT},
        "args": [list(a) for a in node.args],
        "needs": [key(cfg, n) for n in needs(node, cfg)],
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
        return cfg.runs_dir / run_names.stream_run(a["stream"], a["split"], k, a.get("seed", 0))
    if node.stage == "features":
        return cfg.features_dir / run_names.feature_cache(
            a["stream"], cfg.backbone, a["tap"], a["split"], k, a.get("seed", 0)
        )

    controls = tuple(c for c in CONTROLS if a.get(c))
    kind = a.get("kind") or head_kind(a["layer"])
    return cfg.runs_dir / run_names.head_run(
        kind=kind,
        split=a["split"],
        layer=a["layer"],
        method=a["method"],
        layers=a["layers"],
        kernel=a["kernel"],
        seed=a.get("seed", 0),
        controls=controls,
        train_state=a.get("train_state", "reset"),
        key=k,
        stream_seed=a.get("stream_seed", 0),
    )


def head_config(cfg: StudyConfig, node: Node) -> StudyConfig:
    """The resolved config of a head run: its arguments written into the fields they set
    (a head trained with carried state: ``convlstm_batch_size`` 1, the authors' batch)."""
    a = dict(node.args)
    batch = 1 if a.get("train_state") == "carried" else cfg.convlstm_batch_size
    return cfg.replace(split=a["split"], fusion_layer=a["layer"], fusion_method=a["method"],
                       convlstm_layers=a["layers"], convlstm_kernel=a["kernel"] or cfg.convlstm_kernel,
                       convlstm_batch_size=batch)  # fmt: skip


# ----------------------------------------------------------------------------- done rules


def _stream_checkpoint(cfg: StudyConfig, stream: str, split: int, seed: int = 0) -> Path:
    return RunDir(output(cfg, stream_node(stream, split, seed))).best_checkpoint


def _features_done(cfg: StudyConfig, node: Node, videos: Sequence[str] | None = None) -> bool:

    folder = output(cfg, node)
    m = read_cache_manifest(folder) or {}
    if not m.get("complete"):
        return False
    ckpt = _stream_checkpoint(cfg, node.get("stream"), node.get("split"), node_seed(node))
    if not ckpt.is_file() or m.get("checkpoint_sha1") != file_digest(ckpt):
        return False
    return not missing_videos(folder, videos if videos is not None else _cached_videos(cfg, node))


def _cached_videos(cfg: StudyConfig, node: Node) -> list[str]:
    return [r.path for r in feature_records(cfg, node.get("split"))]


def feature_records(cfg: StudyConfig, split: int) -> list:
    """Every video of the split (official train list, then test list) in the cache's order."""

    train, test = load_split(cfg.split_format, cfg.splits_dir, split)
    return list(dict.fromkeys([*train, *test]))


def is_done(cfg: StudyConfig, node: Node) -> bool:
    """Does ``node``'s output exist, complete, for this config?"""
    if node.stage == "dataset":
        if cfg.dataset == "synthetic":
            return is_current(cfg.dataset_dir, synth_params(cfg))
        return cfg.videos_dir.is_dir() and cfg.splits_dir.is_dir()
    if node.stage == "rawframes":
        if not is_done(cfg, Node("dataset")):
            return False

        done, todo = rawframes_status(cfg)
        return done > 0 and todo == 0
    if node.stage in ("stream", "head"):
        return RunDir(output(cfg, node)).is_finished()
    if node.stage == "features":
        if not is_done(cfg, needs(node)[0]):
            return False
        return _features_done(cfg, node)
    raise UserError(f"unknown stage {node.stage!r}")


# ----------------------------------------------------------------------------- running


def _run(cfg: StudyConfig, node: Node) -> None:
    """Compute ``node`` (its inputs exist)."""
    if node.stage == "dataset":
        ensure_dataset(cfg)
    elif node.stage == "rawframes":
        ensure_rawframes(cfg, show_progress=True)
    elif node.stage == "stream":
        # temporal_init "spatial": the spatial stream this one needs is its starting point
        start = [RunDir(output(cfg, n)).best_checkpoint for n in needs(node, cfg)
                 if n.stage == "stream"]  # fmt: skip
        train_stream(cfg, stream=node.get("stream"), split=node.get("split"),
                     run=output(cfg, node), resume=True, seed=node_seed(node),
                     init_from=start[0] if start else None)  # fmt: skip
    elif node.stage == "features":
        _run_features(cfg, node.get("stream"), node.get("split"), [node.get("tap")],
                      seed=node_seed(node))  # fmt: skip
    elif node.stage == "head":
        _run_head(cfg, node)


def node_seed(node: Node) -> int:
    """The stream seed of a stream or features node (0 when it has no ``seed`` argument)."""
    return int(dict(node.args).get("seed", 0))


def _run_features(cfg: StudyConfig, stream: str, split: int, taps: Sequence[str],
                  seed: int = 0) -> None:  # fmt: skip
    """Extract the given taps of one stream in one forward pass. Folders made from another
    checkpoint (or of unknown origin: no manifest) are removed; those of this checkpoint are
    resumed, only their missing videos extracted."""

    dirs = {tap: output(cfg, features_node(stream, split, tap, seed)) for tap in taps}
    checkpoint = _stream_checkpoint(cfg, stream, split, seed)
    sha = file_digest(checkpoint)
    if dist.is_main():
        for d in dirs.values():  # made from another checkpoint: its files must not be kept
            clear_stale_cache(d, sha)
    dist.barrier()
    extract_stream(cfg, stream=stream, records=feature_records(cfg, split),
                   checkpoint=checkpoint, dirs=dirs, checkpoint_sha1=sha)  # fmt: skip


def _run_head(cfg: StudyConfig, node: Node) -> None:

    hcfg = head_config(cfg, node)
    split = node.get("split")
    dirs = {s: output(cfg, n) for s, n in zip(STREAM_NAMES, needs(node), strict=True)}
    records = split_records(hcfg, split)
    if node.get("prefused"):
        every = [r.path for recs in records.values() for r in recs]
        dirs = {"fused": prefuse(dirs, node.get("method"), every)}
    classes = list(load_classes(cfg.split_format, cfg.splits_dir))
    a = dict(node.args)
    twin = None
    if cfg.protocol == "authors":
        # The authors' protocol trains exactly as ours and only selects its epoch on test:
        # read it from our run (built first) instead of training the same head twice. A
        # twin from before the test-selected checkpoint was kept: trained again.
        ours = ensure(cfg.replace(protocol="validation"), node)
        if RunDir(ours).best_checkpoint_for("test").is_file():
            twin = ours
    train_head(hcfg, split=split, feature_dirs=dirs, records=records, classes=classes,
               run=output(cfg, node), seed=a["seed"], resume=True, kind=a.get("kind"),
               misalign=a.get("misalign", False),
               permute_labels=a.get("permute_labels", False),
               train_state=a.get("train_state", "reset"), twin=twin)  # fmt: skip


def ensure(cfg: StudyConfig, node: Node) -> Path:
    """Build ``node`` after its inputs unless it is done; returns its output folder.

    The check and the computation happen under a lock on the output, so two processes that
    need the same node compute it once. Under torchrun the dataset and rawframes stages run
    on rank 0 only; the training stages run on every rank.
    """
    for n in needs(node, cfg):
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


def streams(cfg: StudyConfig, split: int | None = None, *,
            seed: int | None = None) -> dict[str, RunDir]:  # fmt: skip
    """Both streams of ``split`` (default ``cfg.split``) trained with stream seed ``seed``
    (default: the first of ``cfg.stream_seeds``), trained when missing."""
    split = cfg.split if split is None else int(split)
    seed = cfg.stream_seeds[0] if seed is None else int(seed)
    return {s: RunDir(ensure(cfg, stream_node(s, split, seed))) for s in STREAM_NAMES}


def features(cfg: StudyConfig, split: int | None = None,
             taps: Sequence[str] | str | None = None, *,
             stream_seed: int | None = None) -> dict[str, dict[str, Path]]:  # fmt: skip
    """``{tap: {"spatial": folder, "temporal": folder}}`` of ``split``, from the streams of
    ``stream_seed`` (default: the first of ``cfg.stream_seeds``); the taps still missing for
    a stream are extracted together, in one forward pass."""

    split = cfg.split if split is None else int(split)
    seed = cfg.stream_seeds[0] if stream_seed is None else int(stream_seed)
    taps = check_taps(taps or (cfg.fusion_layer,))
    out: dict[str, dict[str, Path]] = {tap: {} for tap in taps}
    for stream in STREAM_NAMES:
        ensure(cfg, stream_node(stream, split, seed))
        nodes = {tap: features_node(stream, split, tap, seed) for tap in taps}
        for tap, n in nodes.items():
            out[tap][stream] = output(cfg, n)
        group = cfg.features_dir / run_names.feature_group(
            stream, cfg.backbone, split, key(cfg, stream_node(stream, split, seed))
        )
        with stage_lock(group, what=f"{stream} features of split {split}"):
            todo = [tap for tap, n in nodes.items() if not is_done(cfg, n)]
            if todo:
                _run_features(cfg, stream, split, todo, seed=seed)
    return out


def head(cfg: StudyConfig, *, split: int | None = None, layer: str | None = None,
         method: str | None = None, layers: int | None = None, kernel: int | None = None,
         prefuse: bool = False, seed: int | None = None, kind: str | None = None,
         misalign: bool | str = False, permute_labels: bool = False,
         train_state: str = "reset", stream_seed: int | None = None) -> dict[str, Any]:  # fmt: skip
    """One fusion + ConvLSTM (``layer="fc"``: FC-LSTM; ``kind="tavg"``: time-average,
    ``"pooled"``: FC-LSTM on the tap's pooled maps) head,
    trained when missing; returns its results (``heads.load_head_run``). Arguments default
    to the config's fields; the seed to the first of ``cfg.head_seeds``, ``stream_seed``
    (whose streams' features it reads) to the one paired with the seed
    (``cfg.stream_seed_for``); ``misalign`` /
    ``permute_labels`` train it under a negative control (:data:`CONTROLS`);
    ``train_state="carried"`` the authors' way (:func:`head_node`)."""

    split = cfg.split if split is None else int(split)
    layer = check_taps([layer or cfg.fusion_layer])[0]
    method = check_fusion(method or cfg.fusion_method)
    seed = cfg.head_seeds[0] if seed is None else int(seed)
    stream_seed = cfg.stream_seed_for(seed) if stream_seed is None else int(stream_seed)
    node = head_node(split, layer, method, layers or cfg.convlstm_layers,
                     kernel or cfg.convlstm_kernel, prefuse and is_parameter_free(method),
                     seed, kind=kind, misalign=misalign, permute_labels=permute_labels,
                     train_state=train_state, stream_seed=stream_seed)  # fmt: skip
    features(cfg, split, [layer], stream_seed=stream_seed)  # both streams' taps, one pass each
    return load_head_run(ensure(cfg, node))


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
    "node_seed",
    "output",
    "stream_node",
    "streams",
]
