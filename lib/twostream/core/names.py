"""The study's vocabulary, defined once: stream and modality names, data sets, flow
quantisations, head kinds and the method labels every table, check and figure prints.

Nothing here imports torch: the CLI, ``twostream runs`` and the report use these names
without starting a framework.
"""

from __future__ import annotations

from twostream.core.errors import UserError

# ----------------------------------------------------------------------------- streams

# The one map between the two streams and their input modality (the paper's "spatial" stream
# reads RGB frames, the "temporal" stream stacks of optical flow).
MODALITY = {"spatial": "rgb", "temporal": "flow"}
STREAMS = tuple(MODALITY)  # ("spatial", "temporal")
MODALITIES = tuple(MODALITY.values())  # ("rgb", "flow")
ALIASES = {"rgb": "spatial", "flow": "temporal", "spatial": "spatial", "temporal": "temporal"}


def stream_name(stream: str) -> str:
    """'rgb'/'spatial' -> 'spatial', 'flow'/'temporal' -> 'temporal'."""
    if stream not in ALIASES:
        raise UserError(f"unknown stream {stream!r}; known: spatial (rgb), temporal (flow)")
    return ALIASES[stream]


# ----------------------------------------------------------------------------- data

REAL_DATASETS = ("ucf101", "hmdb51")  # also the two official split-file formats
DATASETS = ("synthetic", *REAL_DATASETS)
DATA_NAMES = {"synthetic": "synthetic smoke", "ucf101": "UCF101", "hmdb51": "HMDB51"}

# How a flow field becomes a uint8 JPEG: a fixed +-bound (TSN, denseflow) or the authors'
# per-frame min-max mapping.
QUANTIZATIONS = ("bound", "minmax")

# ----------------------------------------------------------------------------- heads


# The head kinds (``models.convlstm.build_head``): the ConvLSTM on fused maps, the FC-LSTM on
# vectors (the paper's baseline reads the pooled fc features), the time-average control, and
# the LSTM on a convolutional tap's fused maps average-pooled over space ("pooled": the
# FC-LSTM with only the spatial pooling moved before the recurrence, the M3 baseline).
HEAD_KINDS = ("convlstm", "fclstm", "tavg", "pooled")
MAP_HEAD_KINDS = ("tavg", "pooled")  # variants that read a convolutional tap's maps


def head_kind(layer: str) -> str:
    """``fc`` is the FC-LSTM baseline; every convolutional tap feeds a ConvLSTM."""
    return "fclstm" if layer == "fc" else "convlstm"


# How the misalignment control (N2) moves the temporal maps before fusion: "halves" swaps
# the left and right halves of the grid (where the binding family's two objects turn) in
# half of each class's videos; "cells" permutes the grid cells per video (the first control:
# it also scrambles each map's own pattern). ``True`` in an older run's results means "cells".
MISALIGN_MODES = ("halves", "cells")

# How a head's recurrent state runs through *training*: "reset" (ours: batches of videos,
# the state zero at the start of every video) or "carried" (the authors' Torch7 code: one
# video per batch, the hidden and cell state passed on, detached, from each training video
# to the next in the epoch's shuffled order, never reset). A head-run argument
# (twostream.pipeline.graph.head_node): "carried" runs get their own folders and keys, the
# "reset" ones keep theirs.
TRAIN_STATES = ("reset", "carried")


def check_train_state(train_state: str) -> str:
    if train_state not in TRAIN_STATES:
        raise UserError(f"unknown train_state {train_state!r}; known: {', '.join(TRAIN_STATES)}")
    return train_state


# Where the temporal stream's weights start (StudyConfig.temporal_init): "imagenet" = from
# `pretrained`, as the spatial stream does (ImageNet in the full presets), conv1 made by
# cross-modality averaging; "spatial" = from the same split's fine-tuned spatial stream
# (its best checkpoint), conv1 averaged the same way and a fresh classifier.
TEMPORAL_INITS = ("imagenet", "spatial")


# ----------------------------------------------------------------------------- method labels
# What the tables, the mechanism checks, the audit and the figures call each model.

SPATIAL, TEMPORAL, LATE = "spatial only", "temporal only", "late score fusion"
TWO_STREAM = "two-stream ConvLSTM"
SPATIAL_CONVLSTM, TEMPORAL_CONVLSTM = "spatial-only ConvLSTM", "temporal-only ConvLSTM"
FC_LSTM = "FC-LSTM on fc (the paper's baseline)"
POOLED_LSTM = "LSTM on pooled maps (same tap)"
TIME_AVERAGE = "time-average (no recurrence)"
BEST_SINGLE = "better single-stream ConvLSTM"  # resolved on validation

__all__ = [
    "ALIASES",
    "BEST_SINGLE",
    "DATASETS",
    "DATA_NAMES",
    "FC_LSTM",
    "HEAD_KINDS",
    "LATE",
    "MAP_HEAD_KINDS",
    "MISALIGN_MODES",
    "MODALITIES",
    "MODALITY",
    "POOLED_LSTM",
    "QUANTIZATIONS",
    "REAL_DATASETS",
    "SPATIAL",
    "SPATIAL_CONVLSTM",
    "STREAMS",
    "TEMPORAL",
    "TEMPORAL_CONVLSTM",
    "TEMPORAL_INITS",
    "TIME_AVERAGE",
    "TRAIN_STATES",
    "TWO_STREAM",
    "check_train_state",
    "head_kind",
    "stream_name",
]
