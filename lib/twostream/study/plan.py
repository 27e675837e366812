"""The plan of a study: every node the notebooks build, in build order, with its status,
without computing anything (``twostream plan --params FILE`` prices it with
:mod:`twostream.study.costs`).

Table 3 and the audit use Table 1's cell chosen on validation, so their nodes are known
only once Table 1's heads are done; until then the plan lists one placeholder row.
"""

from __future__ import annotations

from twostream.core.config import StudyConfig
from twostream.core.names import STREAMS as STREAM_NAMES
from twostream.pipeline.graph import Node, features_node, head_node, is_done, output, stream_node
from twostream.study.mechanisms import applies, head_specs
from twostream.study.tables import chosen_cell
from twostream.train.features import check_taps, needed_taps


def study_nodes(cfg: StudyConfig) -> list[tuple[str, Node]]:
    """(why, node) for every node the notebooks of a study build before Table 3, in build
    order (Table 3 and the audit use Table 1's cell chosen on validation: see :func:`plan`)."""
    out: list[tuple[str, Node]] = [("data set", Node("dataset")), ("rawframes", Node("rawframes"))]
    splits = sorted({cfg.split, *cfg.splits})
    for split in splits:
        out += _stream_nodes(cfg, split)

    taps = needed_taps(cfg)  # only the taps a head of Table 1 or 2 reads
    out += [("feature cache", features_node(s, cfg.split, t, ss))
            for ss in _stream_seeds(cfg) for t in taps for s in STREAM_NAMES]  # fmt: skip
    for layer in cfg.table1_layers:
        for method in cfg.table1_methods:
            out += [("Table 1", head_node(cfg.split, layer, method, cfg.convlstm_layers,
                                          cfg.convlstm_kernel, seed=seed, stream_seed=ss))
                    for ss, seed in cfg.replicates()]  # fmt: skip
    for layers in cfg.table2_layers:
        for kernel in cfg.table2_kernels:
            out += [("Table 2", head_node(cfg.split, cfg.fusion_layer, cfg.fusion_method, layers,
                                          kernel, seed=seed, stream_seed=ss))
                    for ss, seed in cfg.replicates()]  # fmt: skip
    return out


def _stream_seeds(cfg: StudyConfig) -> list[int]:
    """The distinct seeds of ``cfg.stream_seeds``, in order: one stream run (and feature
    cache) per seed, whatever number of head replicates read it."""
    return [int(s) for s in dict.fromkeys(cfg.stream_seeds)]


def _stream_nodes(cfg: StudyConfig, split: int) -> list[tuple[str, Node]]:
    """Both streams of ``split``, once per stream seed."""
    return [(f"streams, split {split}", stream_node(s, split, ss))
            for ss in _stream_seeds(cfg) for s in STREAM_NAMES]  # fmt: skip


def mechanism_nodes(cfg: StudyConfig) -> list[tuple[str, Node]]:
    """(why, node) of what notebook 07's mechanism checks train (synthetic set v3 only): both
    streams, the designed cell's and fc's features and every head of
    :func:`twostream.study.mechanisms.head_specs`, on every split."""

    if not applies(cfg):
        return []
    out: list[tuple[str, Node]] = []
    for split in cfg.splits:
        out += _stream_nodes(cfg, split)
        taps = check_taps([cfg.fusion_layer, "fc"])
        out += [("mechanisms", features_node(s, split, t, ss))
                for ss in _stream_seeds(cfg) for t in taps for s in STREAM_NAMES]  # fmt: skip
        for kw in head_specs(cfg).values():
            kw = dict(kw)
            layer, method = kw.pop("layer"), kw.pop("method")
            out += [("mechanisms", head_node(split, layer, method, cfg.convlstm_layers,
                                             cfg.convlstm_kernel, seed=seed, stream_seed=ss,
                                             **kw))
                    for ss, seed in cfg.replicates()]  # fmt: skip
    return out


def table3_nodes(cfg: StudyConfig, chosen: dict) -> list[tuple[str, Node, StudyConfig]]:
    """(why, node, config) of Table 3 and the audit at the ``chosen`` Table 1 cell: the
    two-stream and single-stream ConvLSTMs, the authors-protocol runs and the heads trained
    with carried state (both protocols), every split."""
    layer, method = chosen["layer"], chosen["method"]
    authors = cfg.replace(protocol="authors")
    out = []
    for split in cfg.splits:
        out += [("features, Table 3", features_node(s, split, layer, ss), cfg)
                for ss in _stream_seeds(cfg) for s in STREAM_NAMES]  # fmt: skip
        for ss, seed in cfg.replicates():
            for m in (method, "spatial", "temporal"):
                node = head_node(split, layer, m, cfg.convlstm_layers, cfg.convlstm_kernel,
                                 seed=seed, stream_seed=ss)  # fmt: skip
                out.append(("Table 3", node, cfg))
            node = head_node(split, layer, method, cfg.convlstm_layers, cfg.convlstm_kernel,
                             seed=seed, stream_seed=ss)  # fmt: skip
            out.append(("audit (epoch chosen on test)", node, authors))
            carried_splits, carried_seeds = cfg.carried_cells()
            if split in carried_splits and seed in carried_seeds:
                node = head_node(split, layer, method, cfg.convlstm_layers, cfg.convlstm_kernel,
                                 seed=seed, train_state="carried", stream_seed=ss)  # fmt: skip
                out.append(("audit (trained with carried state)", node, cfg))
                out.append(("audit (trained with carried state, epoch chosen on test)", node,
                            authors))  # fmt: skip
    return out


def plan(cfg: StudyConfig) -> list[dict[str, str]]:
    """Every node of the study with its folder and status (``cached`` or ``to run``),
    without computing anything. Nodes that two tables share are listed once."""
    return [row for row, _, _ in plan_entries(cfg)]


def plan_entries(cfg: StudyConfig) -> list[tuple[dict[str, str], Node | None, StudyConfig]]:
    """:func:`plan`'s rows with the node and config of each (``None`` for the Table 3 + audit
    placeholder listed while Table 1's chosen cell is not known): what ``twostream.study.costs``
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

    for why, node, c in table3_nodes(cfg, chosen_cell(cfg)):
        add(why, node, c)
    return rows


__all__ = ["mechanism_nodes", "plan", "plan_entries", "study_nodes", "table3_nodes"]
