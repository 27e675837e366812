"""Frozen, strict configuration.

One flat ``StudyConfig`` holds every knob of the study. Its defaults are the **test
preset**: the cheapest run that still goes through every code path (tiny synthetic set,
two epochs), which is what the notebooks' ``parameters`` cells hold and what ``make test``
runs through nbval. The presets people run live in ``params/*.yaml`` (flat ``key: value``
files, so papermill can inject them straight into the notebooks): ``smoke.yaml`` is the
embedded study of ``make reproduce``, ``ucf101.yaml`` / ``hmdb51.yaml`` the paper's scale.
Those presets set every field explicitly (a test checks), so a change of a default here
never changes a study run. Unknown keys are rejected with the closest known name, because
a typo in a 30-hour run must fail in second one.

Modules that need a narrower config define their own frozen dataclass and build it
with :func:`dataclass_from_dict`, which applies the same strictness.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from twostream.core.errors import UserError
from twostream.core.names import DATASETS, REAL_DATASETS, TEMPORAL_INITS
from twostream.core.params_io import dataclass_from_dict, parse_yaml_text, to_jsonable, yaml_problem
from twostream.core.runtime import resolve_path

# ----------------------------------------------------------------------------- helpers


# ----------------------------------------------------------------------------- the study


# Stages of the pipeline a field can change (see twostream.pipeline.graph). Each field declares the
# stages whose *output* it changes, once, here; a stage's cache key hashes those fields and
# the keys of the stages it reads from. Fields without stages change no cached output
# (where things live, which device, which cells a table has, ...).
STAGES = ("dataset", "rawframes", "stream", "features", "head")


def knob(default: Any, *stages: str, key=None):
    """A StudyConfig field whose value changes the output of ``stages``. ``key``, when given,
    maps the value to what the stages' cache keys hold (only what changes the bytes)."""
    bad = [s for s in stages if s not in STAGES]
    if bad:  # pragma: no cover - a typo in this file
        raise ValueError(f"unknown stage(s) {bad}; known: {STAGES}")
    return field(default=default, metadata={"stages": tuple(stages), "key": key})


def device_type(device: str) -> str:
    """``"cuda:1"`` -> ``"cuda"``, ``"cpu"`` -> ``"cpu"``: which GPU of a machine computes
    something does not change its bytes, the kind of device may (CPU and GPU floating point
    round differently), so caches are keyed by the type, never the index."""
    return str(device).split(":", 1)[0]


# What a field's ``key`` function returns when the field must not enter a cache key at all
# (see :func:`omit_default`).
OMIT = "__omit__"


def omit_default(default: Any):
    """A ``key`` for :func:`knob` that leaves a field out of the cache keys while it holds
    ``default``: a knob added after results were cached then keeps every existing key (and
    run-folder name), and enters the key only when someone sets it to something else."""
    return lambda value: OMIT if value == default else value


def key_value(name: str, value: Any) -> Any:
    """What a stage's cache key holds for field ``name`` = ``value`` (see :func:`knob`);
    :data:`OMIT` = leave the field out of the key."""
    fn = STUDY_FIELDS[name].metadata.get("key") if name in STUDY_FIELDS else None
    return fn(value) if fn is not None else value


def stage_fields(stage: str) -> tuple[str, ...]:
    """The StudyConfig fields that change ``stage``'s output, in declaration order."""
    if stage not in STAGES:
        raise UserError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")
    return tuple(
        f.name for f in dataclasses.fields(StudyConfig) if stage in f.metadata.get("stages", ())
    )


# torch.compile backends a run may ask for (compile_backend)
COMPILE_BACKENDS = ("inductor", "aot_eager", "eager", "cudagraphs")

# Allowed range of every count, size, rate and seed: field -> (low, high or None, low excluded).
# Refused at config load, so a 0 or a negative number fails in second one, not hours in.
_POSITIVE_INTS = (
    "synth_classes", "synth_clips_per_class", "synth_groups", "synth_width", "synth_height",
    "short_side", "prep_workers", "flow_batch", "flow_length", "num_segments", "crop_size", "input_size",
    "stream_epochs", "stream_batch_size", "samples_per_video", "convlstm_hidden",
    "convlstm_epochs", "convlstm_batch_size",
)  # fmt: skip
_NON_NEGATIVE = (
    "num_workers", "seed", "synth_seed", "head_seeds", "stream_seeds", "plateau_patience", "momentum",
    "weight_decay", "color_jitter",
)  # fmt: skip
_POSITIVE_FLOATS = (
    "flow_bound", "scale_min", "scale_max", "lr_spatial", "lr_temporal", "convlstm_lr",
    "grad_clip",
)  # fmt: skip
RANGES: dict[str, tuple[float, float | None, bool]] = {
    **{n: (1, None, False) for n in _POSITIVE_INTS},
    **{n: (0, None, False) for n in _NON_NEGATIVE},
    **{n: (0.0, None, True) for n in _POSITIVE_FLOATS},
    "synth_frames": (2, None, False),  # flow needs two frames
    "synth_version": (2, 3, False),
    "convlstm_dropout": (0.0, 0.99, False),
}


def _describe_range(name: str) -> str:
    low, high, low_open = RANGES[name]
    optional = " (or null)" if name in ("short_side", "grad_clip") else ""
    if high is not None:
        return f"within {low}..{high}{optional}"
    if name in _POSITIVE_INTS or name == "synth_frames":
        return f"an integer >= {low}{optional}"
    return f"{'>' if low_open else '>='} {low}{optional}"


@dataclass(frozen=True)
class StudyConfig:
    """Every knob of the study. Defaults = the test preset (see the module docstring);
    ``params/smoke.yaml`` = the embedded study, ``params/ucf101.yaml`` = the paper's scale."""

    # --- data -------------------------------------------------------------------------
    dataset: str = knob("synthetic", "dataset")  # synthetic | ucf101 | hmdb51
    # <data_root>/<dataset>/{videos,splits,rawframes,features,runs}; the test preset keeps
    # its caches apart from the study's (params/smoke.yaml: data)
    data_root: str = "data/test"
    split: int = 1  # official split (1..3) used by the single-split notebooks
    splits: tuple[int, ...] = (1, 2, 3)  # splits of the final comparison (Table 3)
    # share of *training groups* held out for selection (smoke: 0.2)
    val_fraction: float = knob(0.3, "stream", "head")
    seed: int = knob(0, "stream", "head")
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    num_workers: int = 0  # DataLoader workers (0 = in-process; deterministic on CPU)

    # --- the embedded synthetic set (ignored for real data) ----------------------------
    # generator version: 3 = the four mechanism families (twostream.synthetic.families); 2 = the
    # motion-only classes of earlier releases, kept reproducible
    synth_version: int = knob(3, "dataset")
    # the first N classes; v3 orders them in pairs, one family after another, so 8 = two
    # classes of each family (the test preset) and 18 = all
    synth_classes: int = knob(8, "dataset")
    synth_clips_per_class: int = knob(4, "dataset")
    synth_groups: int = knob(4, "dataset")  # groups per class; splits rotate which groups are test
    synth_frames: int = knob(16, "dataset")
    synth_width: int = knob(64, "dataset")
    synth_height: int = knob(48, "dataset")
    # data-set seed, apart from `seed` so training-seed sweeps reuse one set
    synth_seed: int = knob(0, "dataset")

    # --- preprocessing: decoding and TV-L1 flow ----------------------------------------
    # resize so the shorter side is N (paper's code: 256)
    short_side: int | None = knob(None, "rawframes")
    resize: str | None = knob(None, "rawframes")  # or an exact "WxH" such as "340x256"
    flow_backend: str = knob("opencv", "rawframes")  # opencv | torch
    flow_preset: str = knob("fast", "rawframes")  # paper | fast
    # cpu | cuda | cuda:N (torch backend). The rawframes key holds the device *type* only:
    # cuda:0 and cuda:1 give the same bytes, while CPU and GPU TV-L1 may differ in float
    # rounding, so cpu and cuda keep separate keys (and the existing ones: "cpu" -> "cpu").
    flow_device: str = knob("cpu", "rawframes", key=device_type)
    # bound (TSN, +-flow_bound) | minmax (authors' code)
    flow_quantization: str = knob("bound", "rawframes")
    # TSN's +-20 px for real video; the embedded v3 set moves 1-3 px per frame: +-2.5
    flow_bound: float = knob(2.5, "rawframes")
    prep_workers: int = 2
    # Execution knobs of prepare's torch TV-L1 on CUDA, in no stage (a pair's flow is the
    # same alone or in a batch: tests/test_flow.py). flow_batch: pairs solved together (a
    # batch runs as long as its slowest pair); flow_compile: torch.compile the iteration.
    flow_batch: int = 64
    flow_compile: bool = True

    # --- the two streams ----------------------------------------------------------------
    # resnet10_w32 (embedded set, no ImageNet weights) | resnet18 | resnet34 | resnet50 | resnet101
    backbone: str = knob("resnet10_w32", "stream")
    pretrained: str = knob("none", "stream")  # none | imagenet | /path/to/resnet_weights.pth
    # which ImageNet weights "imagenet" means: V1 is the paper-era ResNet (77.4% for
    # ResNet-101, closest to the authors' Torch7 model); IMAGENET1K_V2 is torchvision's newer
    imagenet_weights: str = knob("IMAGENET1K_V1", "stream")
    # Where the temporal stream starts (core.names.TEMPORAL_INITS): imagenet = from
    # `pretrained` like the spatial stream, conv1 by cross-modality averaging (the paper's
    # text read literally); spatial = from this split's fine-tuned spatial stream's best
    # checkpoint, conv1 averaged the same way, a fresh classifier (what the paper may mean).
    # No stage of its own: with "spatial" the temporal stream node reads the spatial one
    # (pipeline.graph.needs), which is built first and whose key enters the temporal key;
    # with "imagenet" every key stays as it was.
    temporal_init: str = "imagenet"
    # L flow fields per stack -> 2L input channels (paper: 10)
    flow_length: int = knob(4, "stream", "features")
    # T equally spaced time steps per video (paper: 25)
    num_segments: int = knob(4, "stream", "features")
    crop_size: int = knob(48, "stream", "features")  # random square crop (paper: 256)
    input_size: int = knob(32, "stream", "features")  # network input after resize (paper: 224)
    scale_min: float = knob(0.75, "stream")  # random rescale factor range (paper: 3/4 .. 4/3)
    scale_max: float = knob(4.0 / 3.0, "stream")
    # Test-time crops of the streams' video-level evaluation: 1 (centre) or 10 (four corners
    # and the centre, each also mirrored), averaged with the T time steps (the literature's
    # "25 x 10"). The feature cache always uses the centre crop.
    test_crops: int = knob(1, "stream")
    # Where the training / evaluation images are cropped, resized, flipped and normalised:
    # host (DataLoader workers decode + augment to float) | device (the loader reads JPEG
    # bytes; decode and augmentation run batched on `device`: twostream.data.device_pipeline;
    # per-epoch validation on the centre view only, test_crops views for the final val/test;
    # eval batches sized in views). A stream knob: on CUDA the device decoder and the
    # batched resize differ from the host's in the last bits, so the runs are cached apart.
    input_pipeline: str = knob("host", "stream")
    # Horizontal flip (flow-x negated). Off in the smoke run: the synthetic classes are
    # defined by motion *direction* (left vs right, clockwise vs counter-clockwise), which a
    # mirror swaps, so flipping would train on contradictory labels. Real actions are
    # mirror-symmetric: the full presets flip.
    hflip: bool = knob(False, "stream")
    color_jitter: float = knob(0.0, "stream")  # strength of brightness/contrast jitter; 0 = off
    # temporal (paper text) | spatial (released code) | both
    jitter_stream: str = knob("temporal", "stream")
    stream_epochs: int = knob(2, "stream")
    # smoke: 16 gives twice the SGD steps of 32 for the same compute
    stream_batch_size: int = knob(8, "stream")
    # random time steps drawn per video per training epoch
    samples_per_video: int = knob(2, "stream")
    # paper: 5e-6 with ImageNet weights; smoke trains from scratch
    lr_spatial: float = knob(0.01, "stream")
    # paper's value is garbled ("5x10^3"); full presets use 5e-3
    lr_temporal: float = knob(0.01, "stream")
    momentum: float = knob(0.9, "stream")
    weight_decay: float = knob(1e-4, "stream")
    plateau_patience: int = knob(2, "stream")  # epochs without val-accuracy gain before lr /= 10
    amp: bool = True  # bf16 autocast + channels_last on CUDA (no-op on CPU)
    compile: bool = False  # torch.compile the backbone
    # torch.compile's backend: inductor (GPU runs) | aot_eager (the CPU rehearsal) | eager |
    # cudagraphs; how the same computation runs, so it changes no cached output
    compile_backend: str = "inductor"
    # also write TensorBoard event files into each run folder (needs `pip install tensorboard`);
    # metrics.csv stays the record every reader uses, so this changes no stage's output
    tensorboard: bool = False

    # --- feature-map fusion and ConvLSTM ------------------------------------------------
    fusion_layer: str = "conv5_x"  # conv3_x | conv4_x | conv5_x | conv5_x_inner | fc
    fusion_method: str = "sum"  # sum | max | concat | concat_interleaved | conv
    table1_layers: tuple[str, ...] = (
        "conv3_x", "conv4_x", "conv5_x_inner", "conv5_x_branch", "conv5_x", "fc",
    )  # fmt: skip
    table1_methods: tuple[str, ...] = ("sum", "max", "concat", "conv")
    convlstm_layers: int = 1
    convlstm_kernel: int = 3
    convlstm_hidden: int = knob(8, "head")  # paper: 300
    convlstm_dropout: float = knob(0.5, "head")
    convlstm_peephole: bool = knob(False, "head")
    convlstm_lr: float = knob(1e-3, "head")  # paper: 5e-5; authors' code: 1e-4
    convlstm_epochs: int = knob(2, "head")  # paper: 60; authors' code: 100
    convlstm_batch_size: int = knob(8, "head")  # authors' code: 1 video
    # clip gradient *values* to +-grad_clip; None = off
    grad_clip: float | None = knob(5.0, "head")
    # The audit's heads trained the authors' way (one video per batch, state carried): on
    # these splits and head seeds only (None: every split / every head seed). A batch of one
    # launches every operator once per video, ~30x the launches per video of a batch of 32
    # (benchmarks/head_ops.py), so on a GPU these heads cost hours each; the paper presets
    # train one (split 1, seed 0), whose test split alone has thousands of videos.
    carried_splits: tuple[int, ...] | None = None
    carried_seeds: tuple[int, ...] | None = None
    table2_layers: tuple[int, ...] = (1, 2, 3)
    table2_kernels: tuple[int, ...] = (3, 5)
    # validation (ours) | authors (best epoch picked on test)
    protocol: str = knob("validation", "head")
    # Seeds of the head trainings (Tables 1-3, the audit: cheap from the feature cache); the
    # tables report the mean +- std over them. The train/val split keeps `seed`.
    head_seeds: tuple[int, ...] = (0,)
    # Training seeds of the streams (initial weights, sampling, augmentation order); `seed`
    # fixes only the train/val split. One entry, or as many as `head_seeds`: replicate i is
    # (stream seed i, or the only one; head seed i), and a head of replicate i reads the
    # features of the streams trained with stream seed i. Tables comparing streams or late
    # fusion draw these seeds in their intervals; with one seed the spread is n/a (NaN).
    stream_seeds: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        for name, (low, high, low_open) in RANGES.items():
            value = getattr(self, name)
            values = value if isinstance(value, tuple) else (value,)
            for v in values:
                if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
                    continue  # None where allowed; the types are _coerce's
                if (v <= low if low_open else v < low) or (high is not None and v > high):
                    raise UserError(f"config: {name} must be {_describe_range(name)}, got {v!r}")
        checks = [
            (self.dataset in DATASETS, f"dataset must be one of {DATASETS}, got {self.dataset!r}"),
            (1 <= self.split <= 3, f"split must be 1, 2 or 3, got {self.split}"),
            (
                all(1 <= s <= 3 for s in self.splits),
                f"splits must be within 1..3, got {self.splits}",
            ),
            (0.0 <= self.val_fraction < 1.0, "val_fraction must be in [0, 1)"),
            (self.flow_backend in ("opencv", "torch"), "flow_backend must be opencv or torch"),
            (self.flow_preset in ("paper", "fast"), "flow_preset must be paper or fast"),
            (
                self.flow_quantization in ("bound", "minmax"),
                "flow_quantization must be bound or minmax",
            ),
            (
                self.jitter_stream in ("temporal", "spatial", "both"),
                "jitter_stream must be temporal, spatial or both",
            ),
            (self.protocol in ("validation", "authors"), "protocol must be validation or authors"),
            (
                self.convlstm_kernel in (3, 5) and set(self.table2_kernels) <= {3, 5},
                "ConvLSTM kernels (convlstm_kernel, table2_kernels) must be 3 or 5 (the paper's)",
            ),
            (
                1 <= self.convlstm_layers <= 3 and all(1 <= n <= 3 for n in self.table2_layers),
                "ConvLSTM depths (convlstm_layers, table2_layers) must be 1, 2 or 3 (the paper's)",
            ),
            (self.scale_min <= self.scale_max, "scale_min must be <= scale_max"),
            (
                self.test_crops in (1, 10),
                "test_crops must be 1 (centre) or 10 (corners, centre, mirrored)",
            ),
            (
                self.input_pipeline in ("host", "device"),
                f"input_pipeline must be host or device, got {self.input_pipeline!r}",
            ),
            (
                self.compile_backend in COMPILE_BACKENDS,
                f"compile_backend must be one of {', '.join(COMPILE_BACKENDS)}, "
                f"got {self.compile_backend!r}",
            ),
            (len(self.head_seeds) >= 1, "head_seeds needs at least one seed"),
            (
                set(self.carried_splits or ()) <= set(self.splits),
                f"carried_splits {self.carried_splits} must be among splits {self.splits}",
            ),
            (
                set(self.carried_seeds or ()) <= set(self.head_seeds),
                f"carried_seeds {self.carried_seeds} must be among head_seeds {self.head_seeds}",
            ),
            (
                len(self.stream_seeds) in {1, len(self.head_seeds)},
                f"stream_seeds must hold one seed or as many as head_seeds "
                f"({len(self.head_seeds)}: replicate i pairs stream seed i with head seed i), "
                f"got {list(self.stream_seeds)} for head_seeds {list(self.head_seeds)}",
            ),
            (
                self.temporal_init in TEMPORAL_INITS,
                f"temporal_init must be one of {', '.join(TEMPORAL_INITS)}, "
                f"got {self.temporal_init!r}",
            ),
            (
                self.imagenet_weights in ("IMAGENET1K_V1", "IMAGENET1K_V2"),
                "imagenet_weights must be IMAGENET1K_V1 or IMAGENET1K_V2",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise UserError(f"config: {msg}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> StudyConfig:
        return dataclass_from_dict(cls, data, source=source)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, **overrides: Any) -> StudyConfig:
        data = load_params(path)
        data.update(overrides)
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_namespace(cls, namespace: dict[str, Any]) -> StudyConfig:
        """Pick the known fields out of a notebook's globals() (its parameters cell + papermill's)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls.from_dict({k: v for k, v in namespace.items() if k in names})

    def replace(self, **changes: Any) -> StudyConfig:
        return self.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)

    # ------------------------------------------------------------------ seeds
    def replicates(self) -> tuple[tuple[int, int], ...]:
        """``(stream seed, head seed)`` of every replicate, in ``head_seeds``' order (see
        ``stream_seeds``: the only stream seed, or the i-th, pairs with head seed i)."""
        return tuple((self.stream_seed_of(i), int(h)) for i, h in enumerate(self.head_seeds))

    def carried_cells(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(splits, head seeds) of the heads trained with carried state: ``carried_splits``
        and ``carried_seeds``, None meaning every split / every head seed."""
        return (tuple(self.carried_splits or self.splits),
                tuple(self.carried_seeds or self.head_seeds))  # fmt: skip

    def stream_seed_of(self, replicate: int) -> int:
        """The stream seed of replicate ``replicate`` (an index into ``head_seeds``)."""
        return int(self.stream_seeds[replicate if len(self.stream_seeds) > 1 else 0])

    def stream_seed_for(self, head_seed: int) -> int:
        """The stream seed paired with ``head_seed`` (its first replicate); a head seed not
        in ``head_seeds`` reads the first stream seed's features."""
        seeds = [int(h) for h in self.head_seeds]
        return self.stream_seed_of(seeds.index(int(head_seed)) if int(head_seed) in seeds else 0)

    # ------------------------------------------------------------------ derived paths
    @property
    def dataset_dir(self) -> Path:

        return resolve_path(self.data_root) / self.dataset

    @property
    def videos_dir(self) -> Path:
        return self.dataset_dir / "videos"

    @property
    def splits_dir(self) -> Path:
        return self.dataset_dir / "splits"

    @property
    def rawframes_dir(self) -> Path:
        return self.dataset_dir / "rawframes"

    @property
    def features_dir(self) -> Path:
        return self.dataset_dir / "features"

    @property
    def runs_dir(self) -> Path:
        return self.dataset_dir / "runs"

    @property
    def split_format(self) -> str:
        """Which official split-file format the data set uses (synthetic mimics UCF101)."""
        return "hmdb51" if self.dataset == "hmdb51" else "ucf101"


STUDY_FIELDS = {f.name: f for f in dataclasses.fields(StudyConfig)}


__all__ = [
    "STAGES",
    "StudyConfig",
    "COMPILE_BACKENDS",
    "device_type",
    "OMIT",
    "key_value",
    "omit_default",
    "knob",
    "stage_fields",
    "load_params",
    "field",
]


# ----------------------------------------------------------------------------- CLI glue


def add_config_arguments(parser) -> None:
    """The ``--params FILE`` and ``--set KEY=VALUE`` options every stage command shares."""
    parser.add_argument(
        "--params", metavar="FILE", default=None, help="params yaml (default: the smoke defaults)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one StudyConfig field (value parsed as YAML); repeatable",
    )


def parse_key_values(items, option: str = "--set") -> dict[str, Any]:
    """``["a=1", "b=[1, 2]"]`` -> ``{"a": 1, "b": [1, 2]}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"{option} expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key.strip().replace("-", "_")] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            problem, _ = yaml_problem(exc)
            raise UserError(
                f"{option} {item!r}: the value is not valid YAML ({problem}); "
                "write a YAML value such as 3, 0.5, text or [1, 2]"
            ) from None
    return out


def config_from_args(args, *, announce: bool = True, **extra: Any) -> StudyConfig:
    """``--params`` + ``--set`` (+ command-specific ``extra`` fields) -> a validated StudyConfig.

    ``announce`` prints, as the command's first line, which config it runs with: without
    ``--params`` the defaults are the test preset (a tiny synthetic study), which a user
    who forgot the flag would otherwise train on without noticing. For the same reason a
    real data set without a parameter file is refused: the test preset's model, epochs
    and crop sizes are meant for 48x64 synthetic clips, not for UCF101 or HMDB51.
    """
    params = getattr(args, "params", None)
    data = load_params(params) if params else {}  # the file alone is valid, or this raised
    overrides = parse_key_values(getattr(args, "overrides", []))
    names = {f.name for f in dataclasses.fields(StudyConfig)}
    if [k for k in overrides if k not in names]:  # blame --set, not the params file
        dataclass_from_dict(StudyConfig, overrides, source="--set")
    given = {k: v for k, v in extra.items() if v is not None}
    data.update(overrides)
    data.update(given)
    # The file passed on its own, so a value refused now comes from --set or an option.
    blame = (["--set"] if overrides else []) + (["the command's options"] if given else [])
    source = " / ".join(blame) + (f" (over {params})" if params else "") if blame else "config"
    cfg = StudyConfig.from_dict(data, source=source)
    if params is None and cfg.dataset in REAL_DATASETS:
        raise UserError(
            f"dataset {cfg.dataset!r} needs its parameter file: pass --params "
            f"params/{cfg.dataset}.yaml (--set KEY=VALUE still overrides single fields); "
            "without --params the defaults are the test preset, sized for the tiny synthetic set"
        )
    if announce and os.environ.get("RANK", "0") == "0":  # torchrun: say it once
        print(describe_config_source(cfg, params=params, overrides=sorted(overrides)))
    return cfg


def describe_config_source(cfg: StudyConfig, *, params=None, overrides=()) -> str:
    """One line: which config a command uses, and where its data live."""
    changed = f", with --set {', '.join(overrides)}" if overrides else ""
    if params is None:
        return (
            f"using the test preset (StudyConfig defaults: {cfg.dataset}, {cfg.data_root}"
            f"{changed}); pass --params FILE for a real data set"
        )
    return f"using {params} ({cfg.dataset}, data in {cfg.dataset_dir}{changed})"


def load_params(path: str | os.PathLike) -> dict[str, Any]:
    """Read a flat ``params/*.yaml`` file into a dict (validated against StudyConfig).

    Refused, as one line naming the file: a file that is not UTF-8 text, a YAML syntax
    error (with its line), a key given twice, an empty file and anything but a mapping."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"parameter file {p} does not exist; see params/ for examples")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise UserError(f"parameter file {p} cannot be read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UserError(
            f"{p}, line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file "
            "as UTF-8 (params files are plain `key: value` lines, see params/test.yaml)"
        ) from None
    data = parse_yaml_text(text, str(p))
    if data is None:
        raise UserError(
            f"{p} is empty (no `key: value` line); copy a preset such as params/test.yaml "
            "and change the fields you need"
        )
    if not isinstance(data, dict):
        raise UserError(
            f"{p}: expected a mapping of `key: value` lines, got a {type(data).__name__}; "
            "see params/test.yaml"
        )
    dataclass_from_dict(StudyConfig, data, source=str(p))  # validate early
    return data
