"""The embedded synthetic action data set, part 2: a whole data set in UCF101's layout.

Nothing can be downloaded on the machines this project is built on, and users should run
every notebook before they own UCF101. So this module writes a small data set of *real
video files* in UCF101's layout, its clips drawn by the generator of ``version``:
:mod:`twostream.synthetic.families` (3, the default: the four mechanism families) or
:mod:`twostream.synthetic.clip` (2: the motion-only classes of earlier releases, kept
reproducible from their parameters)::

    <out>/videos/<Class>/v_<Class>_gXX_cYY.avi      FFV1 (lossless) AVI, one per clip
    <out>/splits/classInd.txt, trainlist0{1,2,3}.txt, testlist0{1,2,3}.txt   (CRLF, as UCF101)
    <out>/splits_hmdb51/<Class>_test_split{1,2,3}.txt                        (on request)
    <out>/synthetic.json                            the generation parameters (written last)

The three test sets are disjoint sets of whole groups, like UCF101's g01-07 / g08-14 /
g15-21. FFV1 is chosen because this OpenCV build writes and decodes it losslessly (decoded
frames equal the rendered ones, so the ground-truth flow holds for the files too) and
deterministically (the same parameters and seed give byte-identical files); MJPG and XVID
lose 5-7 grey levels per pixel on textured frames.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from twostream.core.errors import UserError
from twostream.core.params_io import save_json
from twostream.core.runtime import atomic_path, atomic_write_bytes, progress
from twostream.data.splits import HMDB51_SPLITS_HELP, UCF101_SPLITS_HELP
from twostream.data.video import find_videos
from twostream.synthetic import clip, families
from twostream.synthetic.clip import ClipSpec

VERSIONS = (2, 3)  # v2: motion-defined classes (reproducible); v3: the four mechanism families

FOURCC = "FFV1"
FPS = 25
MARKER = "synthetic.json"
MIN_SIZE = 32  # frames smaller than this leave no room for an object to move
MIN_GROUPS = 4  # three disjoint test sets + at least one group that is always train


@dataclass(frozen=True)
class SynthParams:
    """The parameters that define a synthetic data set (recorded in synthetic.json)."""

    classes: int = 18
    clips_per_class: int = 24
    groups: int = 8
    frames: int = 16
    width: int = 80
    height: int = 60
    seed: int = 0
    hmdb_splits: bool = False
    version: int = 3

    @property
    def generator(self):
        """The module that draws and renders this version's clips."""
        if self.version not in VERSIONS:
            raise UserError(f"synthetic set version must be one of {VERSIONS}, got {self.version}")
        return clip if self.version == 2 else families

    def validate(self) -> SynthParams:
        if self.version not in VERSIONS:
            raise UserError(
                f"synthetic data set: version must be one of {VERSIONS}, got {self.version}"
            )
        problems = []
        n = len(self.generator.CLASS_NAMES)
        if not 1 <= self.classes <= n:
            problems.append(
                f"classes must be 1..{n} (v{self.version} defines {n}), got {self.classes}"
            )
        if self.groups < MIN_GROUPS:
            problems.append(
                f"groups must be >= {MIN_GROUPS} (three disjoint test sets plus a "
                f"group that is always train), got {self.groups}"
            )
        if self.clips_per_class < self.groups:
            problems.append(
                f"clips_per_class ({self.clips_per_class}) must be >= groups "
                f"({self.groups}) so every group has a clip"
            )
        if self.frames < 2:
            problems.append(f"frames must be >= 2 (flow needs two frames), got {self.frames}")
        if self.width < MIN_SIZE or self.height < MIN_SIZE:
            problems.append(
                f"frame size must be at least {MIN_SIZE}x{MIN_SIZE}, got {self.width}x{self.height}"
            )
        if self.width % 2 or self.height % 2:
            problems.append(
                f"width and height must be even (video codecs), got {self.width}x{self.height}"
            )
        if self.seed < 0:
            problems.append(f"seed must be >= 0, got {self.seed}")
        if problems:
            raise UserError("synthetic data set: " + "; ".join(problems))
        return self

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.generator.CLASS_NAMES[: self.classes]

    def families(self) -> dict[str, str]:
        """Class name -> family (v2: all "motion")."""
        return {name: self.generator.family_of(name) for name in self.class_names}

    def test_groups(self, split: int) -> tuple[int, ...]:
        """Groups held out in split 1/2/3: disjoint blocks, like UCF101's g01-07/g08-14/g15-21."""
        k = max(1, min(round(self.groups * 7 / 25), (self.groups - 1) // 3))
        return tuple(range((split - 1) * k + 1, split * k + 1))

    def clips_in_group(self, group: int) -> int:
        base, extra = divmod(self.clips_per_class, self.groups)
        return base + (1 if group <= extra else 0)

    def clip(self, class_name: str, group: int, clip: int):
        """One clip's spec (v2 :class:`~twostream.synthetic.clip.ClipSpec`, v3
        :class:`~twostream.synthetic.families.Clip`): ``.frame(t)``, ``.flow(t)``, ``.path``."""
        return self.generator.make_clip(class_name, group, clip, frames=self.frames,
                                        width=self.width, height=self.height, seed=self.seed)  # fmt: skip

    def specs(self) -> list[ClipSpec]:
        return [
            self.clip(name, g, c)
            for name in self.class_names
            for g in range(1, self.groups + 1)
            for c in range(1, self.clips_in_group(g) + 1)
        ]


def _write_video(path: Path, spec: ClipSpec) -> None:
    import cv2

    with atomic_path(path) as tmp:
        # FFMPEG picks the container from the extension: give the temp file a .avi name
        tmp_avi = tmp.with_name(tmp.name + ".avi")
        writer = cv2.VideoWriter(
            str(tmp_avi),
            cv2.CAP_FFMPEG,
            cv2.VideoWriter_fourcc(*FOURCC),
            FPS,
            (spec.width, spec.height),
        )
        if not writer.isOpened():
            raise UserError(
                f"OpenCV cannot write {FOURCC} AVI files here (needs the FFMPEG "
                "backend; install opencv-contrib-python-headless from PyPI)"
            )
        try:
            for t in range(spec.frames):
                writer.write(spec.frame(t))
            writer.release()
            os.replace(tmp_avi, tmp)
        finally:
            writer.release()
            tmp_avi.unlink(missing_ok=True)


def _split_texts(p: SynthParams, specs: list[ClipSpec]) -> dict[str, str]:
    """UCF101-format split files (CRLF), keyed by file name."""
    files = {"classInd.txt": "".join(f"{i + 1} {n}\r\n" for i, n in enumerate(p.class_names))}
    for split in (1, 2, 3):
        test = set(p.test_groups(split))
        files[f"trainlist{split:02d}.txt"] = "".join(
            f"{s.path} {s.label + 1}\r\n" for s in specs if s.group not in test
        )
        files[f"testlist{split:02d}.txt"] = "".join(
            f"{s.path}\r\n" for s in specs if s.group in test
        )
    return files


def _hmdb_texts(p: SynthParams, specs: list[ClipSpec]) -> dict[str, str]:
    """HMDB51-format split files: ``<video> <id> `` with a trailing space, LF, 1 train 2 test."""
    files = {}
    for name in p.class_names:
        for split in (1, 2, 3):
            test = set(p.test_groups(split))
            files[f"{name}_test_split{split}.txt"] = "".join(
                f"{s.name}.avi {2 if s.group in test else 1} \n"
                for s in specs
                if s.class_name == name
            )
    return files


def generate(
    out_dir: str | os.PathLike,
    *,
    classes: int = 18,
    clips_per_class: int = 24,
    groups: int = 8,
    frames: int = 16,
    width: int = 80,
    height: int = 60,
    seed: int = 0,
    hmdb_splits: bool = False,
    version: int = 3,
) -> Path:
    """Write the data set into ``out_dir`` (videos/, splits/, [splits_hmdb51/], synthetic.json).

    Every file is written atomically and ``synthetic.json`` last, so its presence means
    the set is complete. Returns ``out_dir``.
    """

    p = SynthParams(
        classes, clips_per_class, groups, frames, width, height, seed, hmdb_splits, version
    ).validate()
    out = Path(out_dir)
    marker = out / MARKER
    with contextlib.suppress(FileNotFoundError):
        marker.unlink()  # incomplete until rewritten at the end
    start = time.perf_counter()
    specs = p.specs()
    for spec in progress(specs, desc="synthetic videos", unit="clip"):
        _write_video(out / "videos" / spec.path, spec)
    texts = {f"splits/{k}": v for k, v in _split_texts(p, specs).items()}
    if hmdb_splits:
        texts.update({f"splits_hmdb51/{k}": v for k, v in _hmdb_texts(p, specs).items()})
    for name, text in texts.items():
        atomic_write_bytes(out / name, text.encode("ascii"))
    _write_marker(out, p, time.perf_counter() - start)
    return out


def _marker_payload(p: SynthParams) -> dict:
    import cv2

    return {
        "generator": "twostream.synthetic.clip",
        "version": p.generator.GENERATOR_VERSION,
        "codec": FOURCC,
        "params": asdict(p),
        "opencv": cv2.__version__,
    }


def _write_marker(out: Path, p: SynthParams, seconds: float) -> None:

    payload = _marker_payload(p)
    payload["classes"] = list(p.class_names)
    payload["families"] = p.families()
    payload["test_groups"] = {str(s): list(p.test_groups(s)) for s in (1, 2, 3)}
    payload["generation_s"] = round(seconds, 2)
    save_json(payload, out / MARKER)


def read_marker(dataset_dir: str | os.PathLike) -> dict | None:
    """The recorded generation parameters of a synthetic set, or None if absent/corrupt."""
    try:
        return json.loads((Path(dataset_dir) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def is_current(dataset_dir: Path, p: SynthParams) -> bool:
    """Does ``dataset_dir`` hold exactly the set of ``p`` (marker, version, every video)?"""
    m = read_marker(dataset_dir)
    if not m:
        return False
    want = _marker_payload(p)
    if any(m.get(k) != want[k] for k in ("generator", "version", "codec", "params")):
        return False
    # Every video of the set is there; other files a user keeps beside them (notes.avi,
    # .DS_Store) are not the set's business and must not make it look stale (a rewrite).
    videos = dataset_dir / "videos"
    return (
        (dataset_dir / "splits" / "classInd.txt").is_file()
        and videos.is_dir()
        and all((videos / spec.path).is_file() for spec in p.specs())
    )


# The names this module writes: videos <Class>/v_<Class>_gXX_cYY.avi of either generator's
# classes, and the split files. Cleanup removes these and nothing else.
_GENERATED_VIDEO = re.compile(r"(\w+)/v_(\w+)_g\d+_c\d+\.avi")
_GENERATED_SPLIT = re.compile(r"classInd\.txt|(train|test)list0[1-3]\.txt|\w+_test_split[1-3]\.txt")


def _generated_files(dataset_dir: Path) -> list[Path]:
    """The files of ``dataset_dir``'s videos/ and split folders that this module writes, by
    name (a video of a known class under its class folder, a split file)."""
    known = set(clip.CLASS_NAMES) | set(families.CLASS_NAMES)
    out = []
    videos = dataset_dir / "videos"
    if videos.is_dir():
        for rel in find_videos(videos)[0]:
            m = _GENERATED_VIDEO.fullmatch(rel)
            if m and m.group(1) == m.group(2) and m.group(1) in known:
                out.append(videos / rel)
    for sub in ("splits", "splits_hmdb51"):
        folder = dataset_dir / sub
        if folder.is_dir():
            out += [
                f for f in folder.iterdir() if f.is_file() and _GENERATED_SPLIT.fullmatch(f.name)
            ]
    return out


def _move_tree_files(src: Path, dest: Path) -> None:
    """Move every file of ``src`` to the same relative path under ``dest`` (replacing a file
    of that name), leaving the other files of ``dest`` alone."""
    for dirpath, _dirnames, filenames in os.walk(src):
        for name in filenames:
            f = Path(dirpath) / name
            target = dest / f.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f, target)


def _remove_empty_dirs(root: Path) -> None:
    if not root.is_dir():
        return
    for dirpath, _dirnames, _filenames in os.walk(root, topdown=False):
        with contextlib.suppress(OSError):
            os.rmdir(dirpath)  # only succeeds when empty (the root too, when nothing is left)


def load_clip_spec(dataset_dir: str | os.PathLike, video: str):
    """The clip spec of a generated video (``"Class/v_Class_gXX_cYY.avi"``): its frames and
    exact flow (``.frame(t)``, ``.flow(t)``)."""
    m = read_marker(dataset_dir)
    if not m:
        raise UserError(
            f"{Path(dataset_dir) / MARKER} not found: {dataset_dir} is not a "
            "generated synthetic data set (run 'twostream synth --out DIR')"
        )
    # sets written before v3 recorded no version in their params
    p = SynthParams(**{"version": m.get("version", 2), **m["params"]})
    hit = re.search(r"v_(\w+?)_g(\d+)_c(\d+)\.avi$", video)
    if not hit or hit.group(1) not in p.generator.CLASSES:
        raise UserError(f"{video!r} is not a synthetic video name (v_<Class>_gXX_cYY.avi)")
    return p.clip(hit.group(1), int(hit.group(2)), int(hit.group(3)))


@contextlib.contextmanager
def _lock(path: Path):
    """An exclusive advisory lock, so parallel processes do not generate the same set twice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows: no locking
            pass
        yield


def ensure_synthetic(
    dataset_dir: str | os.PathLike, params: SynthParams, *, force: bool = False
) -> Path:
    """Generate into ``dataset_dir`` unless it already holds this exact set.

    Generation goes to a temporary folder beside it, then replaces videos/ and splits/ and
    writes synthetic.json last; an interrupted run leaves no (or a stale) marker and is
    redone. When a set generated with other parameters is replaced, the caches derived from
    its videos (rawframes/, features/, runs/) are removed too: they describe other videos.
    """
    d = Path(dataset_dir)
    params.validate()
    with _lock(d / ".synthetic.lock"):
        if not force and is_current(d, params):
            return d
        with os.scandir(d) as it:  # leftovers of interrupted generations
            for entry in it:
                if entry.name.startswith(".synth-tmp-"):
                    shutil.rmtree(entry.path, ignore_errors=True)
        tmp = d / f".synth-tmp-{os.getpid()}"
        generate(tmp, **asdict(params))
        (d / MARKER).unlink(missing_ok=True)
        # Only what this module wrote goes (by name): a user's files in videos/ stay.
        for f in _generated_files(d):
            f.unlink()
        for sub in ("videos", "splits", "splits_hmdb51"):
            _remove_empty_dirs(d / sub)
        for sub in ("rawframes", "features", "runs"):  # caches derived from the old videos
            if (d / sub).exists():
                shutil.rmtree(d / sub)
        for sub in ("videos", "splits", "splits_hmdb51"):
            if (tmp / sub).exists():
                _move_tree_files(tmp / sub, d / sub)
        os.replace(tmp / MARKER, d / MARKER)
        shutil.rmtree(tmp, ignore_errors=True)
    return d


def synth_params(cfg) -> SynthParams:
    """The synthetic-set parameters of a StudyConfig."""
    return SynthParams(
        classes=cfg.synth_classes,
        clips_per_class=cfg.synth_clips_per_class,
        groups=cfg.synth_groups,
        frames=cfg.synth_frames,
        width=cfg.synth_width,
        height=cfg.synth_height,
        seed=cfg.synth_seed,
        version=cfg.synth_version,
    )


def ensure_dataset(cfg) -> Path:
    """Make sure ``cfg``'s videos and split files exist; returns ``cfg.dataset_dir``.

    Synthetic: generated (or regenerated when the recorded parameters differ). UCF101 /
    HMDB51: checked, with instructions when missing.
    """
    if cfg.dataset == "synthetic":
        return ensure_synthetic(cfg.dataset_dir, synth_params(cfg))

    sources = {
        "ucf101": (
            "UCF101.rar from https://www.crcv.ucf.edu/data/UCF101.php (13,320 .avi files "
            "in 101 class folders)",
            UCF101_SPLITS_HELP,
        ),
        "hmdb51": (
            "hmdb51_org.rar from https://serre-lab.clps.brown.edu/resource/"
            "hmdb-a-large-human-motion-database/ (one .rar per class; 6,766 .avi files)",
            HMDB51_SPLITS_HELP,
        ),
    }
    videos, splits = sources[cfg.dataset]
    if not cfg.videos_dir.is_dir() or not any(os.scandir(cfg.videos_dir)):
        raise UserError(
            f"{cfg.dataset} videos not found in {cfg.videos_dir}; download {videos} "
            f"and unpack them there as <Class>/<video>.avi"
        )
    if not cfg.splits_dir.is_dir() or not any(os.scandir(cfg.splits_dir)):
        raise UserError(
            f"{cfg.dataset} split files not found in {cfg.splits_dir}; {splits} {cfg.splits_dir}"
        )
    return cfg.dataset_dir


# ----------------------------------------------------------------------------- CLI

_OPTIONS = (  # (option, alias with the StudyConfig field name, SynthParams field, help)
    ("--version", "--synth-version", "version", f"generator version {VERSIONS}"),
    ("--classes", "--synth-classes", "classes", "number of classes (v2: 1..12, v3: 1..18)"),
    ("--clips-per-class", "--synth-clips-per-class", "clips_per_class", "clips per class"),
    ("--groups", "--synth-groups", "groups", f"groups per class (>= {MIN_GROUPS})"),
    ("--frames", "--synth-frames", "frames", "frames per clip"),
    ("--width", "--synth-width", "width", "frame width (even, >= 32)"),
    ("--height", "--synth-height", "height", "frame height (even, >= 32)"),
    ("--seed", "--synth-seed", "seed", "random seed of the data set"),
)
