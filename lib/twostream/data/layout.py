"""The rawframes layout on disk (mmaction2's), its one index convention, its reader and writer.

A video ``Class/v_x.avi`` (a path relative to the videos folder) becomes the folder
``<rawframes>/Class/v_x/`` holding::

    img_00001.jpg ... img_0000N.jpg         RGB frames (JPEG)
    flow_x_00001.jpg ... flow_x_0000M.jpg   uint8 flow x; flow i goes from frame i to i + 1
    flow_y_00001.jpg ... flow_y_0000M.jpg   (M = N - 1)
    flow_minmax.txt                          only for per-frame min-max quantisation

**One index base.** File names count from 1 (:data:`FIRST_INDEX`, mmaction2 / denseflow
``--start 1``); every function here takes and returns **0-based** indices, as Python does:
frame ``i`` is ``img_{i + 1:05d}.jpg`` and flow ``i`` (from frame ``i`` to ``i + 1``) is
``flow_{x,y}_{i + 1:05d}.jpg``. Nothing outside this module spells a file name.

Readers return numpy arrays (``read_rgb``, ``read_flow``, ``read_flow_pixels``) or the uint8
tensors the datasets stack (``load_rgb``, ``load_flow_stack``); the writer
(``write_frame``, ``write_flow``, ``write_minmax``) is what ``twostream prepare`` uses.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from twostream.core.errors import UserError
from twostream.flow.images import dequantize

FIRST_INDEX = 1  # file names count from 1
IMG = "img_{:05d}.jpg"
FLOW_X = "flow_x_{:05d}.jpg"
FLOW_Y = "flow_y_{:05d}.jpg"
MINMAX = "flow_minmax.txt"
JPEG_QUALITY = 95  # mmcv / denseflow default; fixed so outputs are comparable across runs

# Other tools' names for the same files, read only by `twostream prepare --import-rawframes`
# (twostream.prepare.import_rawframes): denseflow counts from 0 by default (img_00000.jpg,
# flow_x_00000.jpg, flow_y_00000.jpg); mmaction2's test data and some TSN trees name the
# flow x_00001.jpg / y_00001.jpg. Any number of digits; the first index is 0 or 1.
FOREIGN_FLOW_NAMES = ("flow_x_/flow_y_", "x_/y_")
_FOREIGN = re.compile(r"(img|flow_x|flow_y|x|y)_(\d+)\.jpg")


# ----------------------------------------------------------------------------- names


def video_subdir(video: str) -> str:
    """``"Class/v_x.avi"`` -> ``"Class/v_x"``: a video's folder relative to the rawframes root."""
    return posixpath.splitext(str(video).replace(os.sep, "/"))[0]


def video_folder(rawframes_dir: str | os.PathLike, video: str) -> Path:
    """The rawframes folder of ``video`` (a path relative to the videos folder)."""
    return Path(rawframes_dir) / video_subdir(video)


def frame_file(i: int) -> str:
    """File name of frame ``i`` (0-based)."""
    return IMG.format(int(i) + FIRST_INDEX)


def flow_files(i: int) -> tuple[str, str]:
    """File names (x, y) of flow ``i`` (0-based: frame i -> i + 1)."""
    k = int(i) + FIRST_INDEX
    return FLOW_X.format(k), FLOW_Y.format(k)


def parse_foreign_name(name: str) -> tuple[str, str | None, int] | None:
    """``"flow_x_00000.jpg"`` -> ``("x", "flow_x_/flow_y_", 0)``, ``"y_00001.jpg"`` -> ``("y",
    "x_/y_", 1)``, ``"img_00001.jpg"`` -> ``("img", None, 1)``; None for any other name. The
    index is the one written in the name (0- or 1-based, whatever the tool did)."""
    m = _FOREIGN.fullmatch(name)
    if m is None:
        return None
    prefix, index = m.group(1), int(m.group(2))
    if prefix == "img":
        return "img", None, index
    return prefix[-1], FOREIGN_FLOW_NAMES[len(prefix) == 1], index


def foreign_file(kind: str, names: str | None, index: int, digits: int = 5) -> str:
    """The name another tool gives file ``index`` (as numbered there) of ``kind`` img | x | y
    under the flow ``names`` of :data:`FOREIGN_FLOW_NAMES`."""
    prefix = "img" if kind == "img" else kind if names == "x_/y_" else f"flow_{kind}"
    return f"{prefix}_{int(index):0{digits}d}.jpg"


def scan_foreign_folder(folder: str | os.PathLike):
    """One folder of another tool's tree, from one directory scan: ``found`` (kind img / x /
    y -> {index as written: name}), a Counter of the flow names seen, and the duplicates
    ``(name, name with the same index)``. Other files (flow_minmax.txt, ...) are left out."""
    found: dict[str, dict[int, str]] = {"img": {}, "x": {}, "y": {}}
    names: Counter = Counter()
    duplicates = []
    with os.scandir(folder) as it:
        for entry in it:
            parsed = parse_foreign_name(entry.name)
            if parsed is None or not entry.is_file():
                continue
            kind, style, index = parsed
            names.update([style] if style else [])
            if index in found[kind]:
                duplicates.append((entry.name, found[kind][index]))
            found[kind][index] = entry.name
    return found, names, duplicates


def find_foreign_folders(root: str | os.PathLike, *, exclude: str | os.PathLike) -> list[str]:
    """Relative POSIX paths of the folders under ``root`` holding frame or flow JPEGs under
    any tool's names, sorted; hidden folders and ``exclude`` are skipped (``os.walk``, no glob)."""
    out, exclude_real = [], os.path.realpath(exclude)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and os.path.realpath(os.path.join(dirpath, d)) != exclude_real)  # fmt: skip
        if any(parse_foreign_name(f) for f in filenames):
            out.append(Path(os.path.relpath(dirpath, root)).as_posix())
    return sorted(out)


def count_rawframes(folder: str | os.PathLike) -> tuple[int, int]:
    """(frames, flow fields) in one video folder, from one directory scan (0 for a missing one)."""
    frames = flows = 0
    try:
        with os.scandir(folder) as it:
            for entry in it:
                name = entry.name
                if name.startswith("img_") and name.endswith(".jpg"):
                    frames += 1
                elif name.startswith("flow_x_") and name.endswith(".jpg"):
                    flows += 1
    except FileNotFoundError:
        pass
    return frames, flows


def folder_conflicts(videos: Sequence[str]) -> dict[str, str]:
    """Videos whose output folder collides with another's (same stem, or nested inside one)."""
    owner: dict[str, str] = {}
    bad: dict[str, str] = {}
    for v in videos:  # sorted: the first owner wins, deterministically
        sub = video_subdir(v)
        if sub in owner:
            bad[v] = (
                f"output folder {sub!r} is already used by {owner[sub]!r} (same name, other extension)"
            )
        else:
            owner[sub] = v
    for v in videos:
        parts = video_subdir(v).split("/")
        for k in range(1, len(parts)):
            parent = "/".join(parts[:k])
            if parent in owner and v not in bad:
                bad[v] = f"output folder would lie inside the rawframes of {owner[parent]!r}"
    return bad


# ----------------------------------------------------------------------------- corrupt files


class CorruptFrameError(UserError, ValueError):
    """A frame file that is missing, empty or cannot be decoded completely (a one-line
    ``UserError`` for the command line; a ``ValueError`` for the callers that catch those)."""

    def __init__(self, path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(
            f"{path}: corrupt JPEG ({reason}); re-run `twostream prepare` to re-extract this video"
        )


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
EOI_WINDOW = 64  # the EOI marker may be followed by a few padding bytes


def check_jpeg_bytes(data, path) -> tuple[int, int]:
    """Raise :class:`CorruptFrameError` unless ``data`` (bytes, or a 1-D uint8 array / tensor) is
    a whole JPEG: SOI marker, a frame header before the scan, EOI marker (FF D9) at the end (a
    few padding bytes allowed). Returns (height, width) from the header. Cheap: a few header
    segments are walked, the entropy-coded data is not touched. (torchvision's CPU decoder
    raises on truncated data; nvjpeg and OpenCV's libjpeg may only warn and return a partly
    grey image, hence this check before any decode.)"""
    if hasattr(data, "numpy"):  # a torch tensor
        data = data.numpy()
    buf = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    n = len(buf)
    if n == 0:
        raise CorruptFrameError(path, "empty file")
    if n < 4 or buf[0] != 0xFF or buf[1] != 0xD8:
        raise CorruptFrameError(path, "no SOI marker: not a JPEG")
    if b"\xff\xd9" not in bytes(buf[max(0, n - EOI_WINDOW) :]):  # FF D9 cannot occur in scan data
        raise CorruptFrameError(path, f"truncated: no EOI marker in the last bytes of {n}")
    i = 2
    while i + 4 <= n:
        if buf[i] != 0xFF:
            raise CorruptFrameError(path, f"bad marker at byte {i}")
        marker = buf[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _SOF:
            if i + 9 > n:
                break
            return (buf[i + 5] << 8) | buf[i + 6], (buf[i + 7] << 8) | buf[i + 8]
        if marker == 0xDA:
            raise CorruptFrameError(path, "scan before any frame header")
        i += 2 + ((buf[i + 2] << 8) | buf[i + 3])
    raise CorruptFrameError(path, "no frame header")


def tail_problem(name: str, *, dir_fd: int | None = None) -> str | None:
    """None when the file ``name`` (relative to ``dir_fd`` when given) ends with the JPEG EOI
    marker (a few padding bytes allowed), else "missing" / "empty" / "truncated (...)". Three
    system calls (open, pread of the last bytes after an lseek to the end, close), no stat
    and no Python file object: the per-file check of :func:`verify_rawframes`."""
    try:
        fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
        if size == 0:
            return "empty (0 bytes)"
        tail = os.pread(fd, EOI_WINDOW, max(0, size - EOI_WINDOW))
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    finally:
        os.close(fd)
    return None if b"\xff\xd9" in tail else "truncated (no JPEG end marker)"


def verify_rawframes(folder: str | os.PathLike, frames: int, flows: int) -> str | None:
    """None when ``folder`` holds the ``frames`` RGB frames and ``flows`` x / y flow fields a
    completion marker records, each non-empty and ending with the JPEG EOI marker;
    otherwise what is wrong (one phrase naming the first bad file). The cost is one open
    and one small read per file: on a UCF101-sized folder (180 frames + 2 x 179 flow JPEGs,
    page cache warm) about 12 ms on the 2-core VM of this project's tests, against 1 ms for
    a bare directory scan; tests/test_bad_frames.py measures it."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return "its folder is missing"
    try:
        for i in range(frames):
            name = frame_file(i)
            problem = tail_problem(name, dir_fd=dir_fd)
            if problem is not None:
                return f"{name} is {problem}"
        for i in range(flows):
            for name in flow_files(i):
                problem = tail_problem(name, dir_fd=dir_fd)
                if problem is not None:
                    return f"{name} is {problem}"
    finally:
        os.close(dir_fd)
    return None


# ----------------------------------------------------------------------------- reading


def read_checked_jpeg(path, size: tuple[int, int] | None = None) -> tuple[bytes, tuple[int, int]]:
    """One frame file's bytes and (H, W), refusing a missing, empty or truncated file (and,
    with ``size`` (H, W), one of another size than the video's other frames) as a one-line
    :class:`CorruptFrameError` naming the file and `twostream prepare` as the fix."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise CorruptFrameError(path, "missing file") from None
    hw = check_jpeg_bytes(data, path)
    if size is not None and hw != tuple(size):
        raise CorruptFrameError(
            path, f"{hw[1]}x{hw[0]}, the video's other frames are {size[1]}x{size[0]}"
        )
    return data, hw


def _imread(path: Path, flags: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode one frame file checked by :func:`read_checked_jpeg` (an undecodable one is a
    :class:`CorruptFrameError` too)."""
    import cv2

    data, _ = read_checked_jpeg(path, size)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if img is None:
        raise CorruptFrameError(path, "OpenCV cannot decode it")
    return img


def frame_size(folder: str | os.PathLike, modality: str) -> tuple[int, int]:
    """(H, W) of a video's first frame (``rgb``) or flow x field (``flow``) from its JPEG
    header: the size every other file of the video must have."""
    path = Path(folder) / (frame_file(0) if modality == "rgb" else flow_files(0)[0])
    return read_checked_jpeg(path)[1]


def read_rgb(
    folder: str | os.PathLike, i: int, *, size: tuple[int, int] | None = None
) -> np.ndarray:
    """Frame ``i`` (0-based) as RGB uint8 (H, W, 3); ``size`` (H, W): the size it must have."""
    import cv2

    bgr = _imread(Path(folder) / frame_file(i), cv2.IMREAD_COLOR, size)  # (H, W, 3) BGR
    return np.ascontiguousarray(bgr[:, :, ::-1])


def read_flow(folder: str | os.PathLike, i: int) -> np.ndarray:
    """Quantised flow ``i`` (0-based) as uint8 (H, W, 2): x then y."""
    import cv2

    fx, fy = flow_files(i)
    x = _imread(Path(folder) / fx, cv2.IMREAD_GRAYSCALE)
    return np.stack([x, _imread(Path(folder) / fy, cv2.IMREAD_GRAYSCALE, x.shape)], axis=-1)


def read_minmax(folder: str | os.PathLike) -> dict[int, tuple[float, float, float, float]]:
    """``flow_minmax.txt``: flow index (0-based) -> (lo_x, hi_x, lo_y, hi_y) in pixels."""
    path = Path(folder) / MINMAX
    if not path.is_file():
        raise UserError(f"{path} not found: min-max flow needs its ranges; rerun prepare")
    out = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts and not parts[0].startswith("#"):
            out[int(parts[0]) - FIRST_INDEX] = tuple(float(v) for v in parts[1:5])
    return out


def read_flow_pixels(
    folder: str | os.PathLike, i: int, *, method: str = "bound", bound: float = 20.0
) -> np.ndarray:
    """Flow ``i`` (0-based) back in pixels, float32 (H, W, 2) (min-max reads its ranges)."""

    if method == "bound":
        return dequantize(read_flow(folder, i), method="bound", bound=bound)
    ranges = read_minmax(folder)
    if i not in ranges:
        raise UserError(f"{Path(folder) / MINMAX} has no range for flow {i}; rerun prepare")
    lo_x, hi_x, lo_y, hi_y = ranges[i]
    return dequantize(read_flow(folder, i), method="minmax", lo=[lo_x, lo_y], hi=[hi_x, hi_y])


def load_rgb(folder: str | os.PathLike, i: int, *, size: tuple[int, int] | None = None):
    """Frame ``i`` (0-based) as a uint8 tensor (3, H, W), RGB order (``size``: see read_rgb)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(read_rgb(folder, i, size=size).transpose(2, 0, 1)))


def load_flow_stack(folder: str | os.PathLike, indices: Sequence[int], *,
                    size: tuple[int, int] | None = None):  # fmt: skip
    """Flow fields ``indices`` (0-based) as a uint8 tensor (2L, H, W): [x_0, y_0, x_1, ...].
    Every file must have the size (H, W) ``size`` (default: the first file's)."""
    import cv2
    import torch

    folder = Path(folder)
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    planes = []
    for i in indices:
        i = int(i)
        if i not in cache:  # a short video repeats fields; read each once
            fx, fy = flow_files(i)
            x = _imread(folder / fx, cv2.IMREAD_GRAYSCALE, size)
            size = size or x.shape
            cache[i] = (x, _imread(folder / fy, cv2.IMREAD_GRAYSCALE, size))
        planes.extend(cache[i])
    return torch.from_numpy(np.stack(planes))  # (2L, H, W)


# ----------------------------------------------------------------------------- writing


def encode_jpeg(img: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """JPEG bytes of a BGR (H, W, 3) or grey (H, W) uint8 image (deterministic)."""
    import cv2

    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - cv2 fails only on invalid arrays
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def write_file(path: Path, data: bytes) -> None:
    """Temp file + rename, like ``utils.atomic_write_bytes`` but without one fsync per file.

    A frame folder belongs to one worker, so a fixed temp name is safe. Durability comes
    from one ``syncfs`` per video before its completion marker (``twostream.prepare.run``):
    per-file fsyncs made writing 3-5x slower than TV-L1 at small sizes, and would cost
    hours on UCF101's 7.5 million files. After a crash a folder without marker is redone.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def write_frame(folder: Path, i: int, bgr: np.ndarray, *, quality: int = JPEG_QUALITY) -> None:
    """Write frame ``i`` (0-based) from a BGR uint8 image (imencode stores a normal JPEG)."""
    write_file(Path(folder) / frame_file(i), encode_jpeg(bgr, quality))


def write_flow(folder: Path, i: int, q: np.ndarray, *, quality: int = JPEG_QUALITY) -> None:
    """Write flow ``i`` (0-based) from its uint8 (H, W, 2) quantisation."""
    fx, fy = flow_files(i)
    write_file(Path(folder) / fx, encode_jpeg(q[:, :, 0], quality))
    write_file(Path(folder) / fy, encode_jpeg(q[:, :, 1], quality))


def minmax_line(i: int, lo, hi) -> str:
    """One line of ``flow_minmax.txt`` for flow ``i`` (0-based), exactly as prepare writes it."""
    values = (lo[0], hi[0], lo[1], hi[1])
    return " ".join([str(int(i) + FIRST_INDEX), *(repr(float(v)) for v in values)])


def write_minmax(folder: Path, lines: Sequence[str]) -> None:
    text = "# flow lo_x hi_x lo_y hi_y (pixels; dequantize: q * (hi - lo) / 255 + lo)\n"
    write_file(Path(folder) / MINMAX, (text + "\n".join(lines) + "\n").encode())


__all__ = [
    "CorruptFrameError",
    "FIRST_INDEX",
    "JPEG_QUALITY",
    "read_checked_jpeg",
    "check_jpeg_bytes",
    "count_rawframes",
    "encode_jpeg",
    "find_foreign_folders",
    "flow_files",
    "folder_conflicts",
    "foreign_file",
    "frame_file",
    "frame_size",
    "load_flow_stack",
    "load_rgb",
    "minmax_line",
    "parse_foreign_name",
    "read_flow",
    "read_flow_pixels",
    "read_minmax",
    "read_rgb",
    "scan_foreign_folder",
    "tail_problem",
    "video_folder",
    "verify_rawframes",
    "video_subdir",
    "write_file",
    "write_flow",
    "write_frame",
    "write_minmax",
]
