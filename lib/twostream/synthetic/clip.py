"""The embedded synthetic action data set, part 1: one clip's motion, rendering and exact flow.

Classes are defined by *motion* only: a randomly shaped and textured object translates
(four directions), rotates (both ways), zooms (in/out), oscillates (horizontally or
vertically) or circles (both ways) over a randomly textured, slowly drifting background.
Shape, texture, colour, size, speed, start pose, background texture and drift are drawn
per clip, so one still frame says almost nothing about the class while optical flow says
a lot: the temporal stream must learn it and the spatial stream cannot, which checks the
whole motion pipeline end to end. Like UCF101, the clips of one group share a scene (the
background texture).

Frames are rendered analytically: every pixel is mapped back through the known motion of
the object (a similarity transform per frame) and of the background (a translation) and
sampled with ``cv2.remap``. The forward optical flow between frames t and t+1 is therefore
known exactly (:func:`ground_truth_flow`), which the flow tests use. Writing a whole data
set of such clips (videos, split files, parameters) is :mod:`twostream.synthetic.writer`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from twostream.core.errors import UserError

GENERATOR_VERSION = 2  # bump when rendering changes, so ensure_dataset regenerates

# Class name -> motion kind; the first ``classes`` entries are used.
CLASSES: dict[str, str] = {
    "TranslateRight": "translate_right",
    "TranslateLeft": "translate_left",
    "TranslateUp": "translate_up",
    "TranslateDown": "translate_down",
    "RotateClockwise": "rotate_cw",
    "RotateCounterclockwise": "rotate_ccw",
    "ZoomIn": "zoom_in",
    "ZoomOut": "zoom_out",
    "OscillateHorizontal": "oscillate_x",
    "OscillateVertical": "oscillate_y",
    "CircleClockwise": "circle_cw",
    "CircleCounterclockwise": "circle_ccw",
}
CLASS_NAMES = tuple(CLASSES)
FAMILIES = ("motion",)  # every v2 class is defined by its motion alone
SHAPES = ("ellipse", "rectangle", "triangle", "star", "cross", "blob")
TEXTURES = ("noise", "stripes", "checker", "rings")


# ----------------------------------------------------------------------------- clip spec


class UCFNamed:
    """UCF101's naming of a clip, for any spec with ``class_name``, ``group`` and ``clip``."""

    @property
    def name(self) -> str:
        return f"v_{self.class_name}_g{self.group:02d}_c{self.clip:02d}"

    @property
    def path(self) -> str:
        """Relative to the videos folder, as in the split files."""
        return f"{self.class_name}/{self.name}.avi"


@dataclass(frozen=True)
class ClipSpec(UCFNamed):
    """Everything needed to render one clip and its exact flow (hashable, JSON-able)."""

    class_name: str
    label: int  # index in CLASS_NAMES (= label when all classes up to it are used)
    group: int  # 1-based
    clip: int  # 1-based within the group
    frames: int
    width: int
    height: int
    # object pose: centre c(t) = c0 + v t + osc(t) + circle(t); angle th0 + w t; scale s0 e^(z t)
    cx0: float
    cy0: float
    vx: float
    vy: float
    osc_amp: float
    osc_period: float
    osc_phase: float
    osc_axis: int  # 0 = x, 1 = y
    circ_radius: float
    circ_omega: float
    circ_phase: float
    theta0: float
    omega: float
    scale0: float
    zoom: float
    # background: texture sampled at x - t * (bvx, bvy) + margin
    bvx: float
    bvy: float
    # appearance
    shape: str
    texture: str
    radius: int  # object radius in sprite pixels (displayed radius = radius * scale)
    object_seed: int
    scene_seed: int

    # ---------------------------------------------------------------- motion model
    def pose(self, t: float) -> tuple[float, float, float, float]:
        """(cx, cy, angle, scale) of the object at time t (frames, may be fractional)."""
        cx = self.cx0 + self.vx * t
        cy = self.cy0 + self.vy * t
        osc = self.osc_amp * math.sin(2 * math.pi * t / self.osc_period + self.osc_phase)
        if self.osc_axis == 0:
            cx += osc
        else:
            cy += osc
        if self.circ_radius:
            a = self.circ_phase + self.circ_omega * t
            cx += self.circ_radius * (math.cos(a) - math.cos(self.circ_phase))
            cy += self.circ_radius * (math.sin(a) - math.sin(self.circ_phase))
        return cx, cy, self.theta0 + self.omega * t, self.scale0 * math.exp(self.zoom * t)

    def render(self) -> np.ndarray:
        """All frames, (F, H, W, 3) uint8 BGR (what ``cv2.VideoCapture`` gives back)."""
        return np.stack([render_frame(self, t) for t in range(self.frames)])

    def frame(self, t: int) -> np.ndarray:
        return render_frame(self, t)

    @property
    def family(self) -> str:
        return family_of(self.class_name)

    def flow(self, t: int) -> np.ndarray:
        return ground_truth_flow(self, t)


def _uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def clip_spec(
    class_name: str,
    group: int = 1,
    clip: int = 1,
    *,
    frames: int = 32,
    width: int = 128,
    height: int = 96,
    seed: int = 0,
) -> ClipSpec:
    """Draw the random parameters of one clip (deterministic in all arguments)."""
    if class_name not in CLASSES:
        import difflib

        close = difflib.get_close_matches(class_name, CLASS_NAMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(
            f"unknown synthetic class {class_name!r}{hint}; known: {', '.join(CLASS_NAMES)}"
        )
    label = CLASS_NAMES.index(class_name)
    kind = CLASSES[class_name]
    rng = np.random.default_rng([seed, label, group, clip, 1])
    scene_seed = int(np.random.default_rng([seed, label, group, 2]).integers(2**31))
    W, H, span = width, height, max(frames - 1, 1)
    short = min(W, H)

    # Displayed radius (mid-clip for zooms). Version 1 drew 0.10-0.17 of the short side: an
    # object covering ~3% of the frame left a from-scratch smoke CNN too little moving area.
    r = _uniform(rng, 0.14, 0.22) * short
    p = dict(
        vx=0.0,
        vy=0.0,
        osc_amp=0.0,
        osc_period=1.0,
        osc_phase=0.0,
        osc_axis=0,
        circ_radius=0.0,
        circ_omega=0.0,
        circ_phase=0.0,
        omega=0.0,
        zoom=0.0,
    )
    theta0 = _uniform(rng, 0, 2 * math.pi)
    r_max = r
    if kind.startswith("zoom"):
        z = min(_uniform(rng, 0.02, 0.035), math.log(3.0) / span)  # at most 3x per clip
        p["zoom"] = z if kind == "zoom_in" else -z
        r_max = r * math.exp(z * span / 2)
    sprite_r = max(4, int(math.ceil(r_max)))  # sprite at the largest displayed size
    scale0 = (r / sprite_r) * math.exp(-p["zoom"] * span / 2)

    # How far the centre may go while the object stays (mostly) inside the frame.
    margin = min(0.8 * r_max, short / 2 - 1)
    free_x, free_y = W - 2 * margin, H - 2 * margin
    if kind.startswith("translate"):
        axis_free = free_x if kind in ("translate_right", "translate_left") else free_y
        # cover 35-75% of the free width, at most 3 px/frame (flow stays learnable)
        speed = max(min(_uniform(rng, 0.35, 0.75) * axis_free / span, 3.0), 0.25)
        sign = 1.0 if kind in ("translate_right", "translate_down") else -1.0
        if kind in ("translate_right", "translate_left"):
            p["vx"] = sign * speed
        else:
            p["vy"] = sign * speed
    elif kind.startswith("rotate"):
        w = math.radians(_uniform(rng, 6.0, 12.0))
        p["omega"] = w if kind == "rotate_cw" else -w  # y points down: +angle is clockwise
    elif kind.startswith("oscillate"):
        axis = 0 if kind == "oscillate_x" else 1
        period = _uniform(rng, 10.0, 18.0)
        axis_free = free_x if axis == 0 else free_y
        # peak speed 2 pi A / P of at most ~3 px/frame keeps the flow learnable at 128x96
        amp = min(
            _uniform(rng, 0.15, 0.3) * axis_free, _uniform(rng, 2.0, 3.0) * period / (2 * math.pi)
        )
        p.update(
            osc_amp=amp, osc_period=period, osc_phase=_uniform(rng, 0, 2 * math.pi), osc_axis=axis
        )
    elif kind.startswith("circle"):
        rho = min(_uniform(rng, 0.15, 0.28) * short, 0.45 * min(free_x, free_y))
        speed = _uniform(rng, 1.2, 2.5)
        w = speed / max(rho, 1.0)
        p.update(
            circ_radius=rho,
            circ_omega=w if kind == "circle_cw" else -w,
            circ_phase=_uniform(rng, 0, 2 * math.pi),
        )

    # Place the start so the whole trajectory stays inside [margin, size - margin].
    probe = ClipSpec(
        class_name,
        label,
        group,
        clip,
        frames,
        W,
        H,
        0.0,
        0.0,
        theta0=theta0,
        scale0=scale0,
        bvx=0.0,
        bvy=0.0,
        shape="ellipse",
        texture="noise",
        radius=sprite_r,
        object_seed=0,
        scene_seed=0,
        **p,
    )
    path = np.array([probe.pose(t)[:2] for t in range(frames)])  # (F, 2) offsets from c0
    lo = margin - path.min(axis=0)
    hi = np.array([W, H]) - margin - path.max(axis=0)
    c0 = [_uniform(rng, lo[i], hi[i]) if hi[i] > lo[i] else (lo[i] + hi[i]) / 2 for i in (0, 1)]

    drift = _uniform(rng, 0.0, 0.6)
    ang = _uniform(rng, 0, 2 * math.pi)
    return ClipSpec(
        class_name,
        label,
        group,
        clip,
        frames,
        W,
        H,
        cx0=float(c0[0]),
        cy0=float(c0[1]),
        theta0=theta0,
        scale0=scale0,
        bvx=drift * math.cos(ang),
        bvy=drift * math.sin(ang),
        shape=SHAPES[int(rng.integers(len(SHAPES)))],
        texture=TEXTURES[int(rng.integers(len(TEXTURES)))],
        radius=sprite_r,
        object_seed=int(rng.integers(2**31)),
        scene_seed=scene_seed,
        **p,
    )


# ----------------------------------------------------------------------------- appearance


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Band-limited noise in [0, 1], (h, w) float32: coarse random grid, bicubic upsampling."""
    import cv2

    gh, gw = max(2, int(math.ceil(h / cell)) + 1), max(2, int(math.ceil(w / cell)) + 1)
    coarse = rng.random((gh, gw), dtype=np.float32)
    fine = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    lo, hi = float(fine.min()), float(fine.max())
    return (fine - lo) / max(hi - lo, 1e-6)


def _palette(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    """Map a [0, 1] map to colours between two random BGR colours: (h, w, 3) float32."""
    a = rng.uniform(0, 255, 3).astype(np.float32)
    b = rng.uniform(0, 255, 3).astype(np.float32)
    if np.abs(a - b).sum() < 150:  # keep some contrast so the texture (and flow) is visible
        b = 255.0 - a
    return a + values[..., None] * (b - a)


def drift_canvas(rng: np.random.Generator, width: int, height: int, frames: int, bvx: float,
                 bvy: float) -> tuple[np.ndarray, float, float]:  # fmt: skip
    """Smooth noise in [0, 1] large enough for a background drifting (bvx, bvy) px per frame
    over ``frames`` frames, and its sampling offset (mx, my); v2 and v3 colour it their way."""
    span = max(frames - 1, 1)
    mx = int(math.ceil(abs(bvx) * span)) + 3
    my = int(math.ceil(abs(bvy) * span)) + 3
    h, w = height + 2 * my, width + 2 * mx
    short = min(width, height)
    v = 0.65 * _smooth_noise(rng, h, w, _uniform(rng, 0.08, 0.2) * short)
    v += 0.35 * _smooth_noise(rng, h, w, _uniform(rng, 0.03, 0.06) * short)
    return v / max(float(v.max()), 1e-6), float(mx), float(my)


@functools.lru_cache(maxsize=64)
def _scene(spec: ClipSpec) -> tuple[np.ndarray, float, float]:
    """Background texture large enough for the whole drift, and its sampling offset."""
    rng = np.random.default_rng(spec.scene_seed)
    v, mx, my = drift_canvas(rng, spec.width, spec.height, spec.frames, spec.bvx, spec.bvy)
    tex = _palette(rng, v)
    return np.ascontiguousarray(tex, dtype=np.float32), mx, my


@functools.lru_cache(maxsize=64)
def _sprite(spec: ClipSpec) -> tuple[np.ndarray, np.ndarray]:
    """The object in its own frame: texture (S, S, 3) float32 and soft mask (S, S) float32."""
    return sprite_arrays(spec.object_seed, spec.shape, spec.texture, spec.radius)


def sprite_arrays(seed: int, shape: str, texture: str, R: int,
                  colours: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """A sprite of radius ``R``: texture (S, S, 3) float32 BGR and soft mask (S, S), S = 2R+5.

    The pattern runs between two random colours, or between ``colours`` (two BGR triples)
    when given (the synthetic set v3's colour-defined objects).
    """
    import cv2

    rng = np.random.default_rng(seed)
    S = 2 * R + 5
    c = (S - 1) / 2
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32) - c
    # mask, drawn at 4x and area-downsampled for anti-aliased edges
    k = 4
    big = np.zeros((S * k, S * k), np.uint8)
    ck = (S * k - 1) / 2

    def pts(radii, angles):
        return np.round(
            np.stack([ck + radii * np.cos(angles), ck + radii * np.sin(angles)], -1) * 16
        ).astype(np.int32)

    Rk = R * k
    if shape == "ellipse":
        ax = (int(Rk * 16), int(Rk * _uniform(rng, 0.45, 0.8) * 16))
        cv2.ellipse(big, (int(ck * 16), int(ck * 16)), ax, 0, 0, 360, 255, -1, cv2.LINE_AA, 4)
    elif shape == "rectangle":
        a = math.atan(_uniform(rng, 0.35, 0.8))
        ang = np.array([a, math.pi - a, math.pi + a, -a])
        cv2.fillPoly(big, [pts(np.full(4, Rk), ang)], 255, cv2.LINE_AA, 4)
    elif shape == "triangle":
        ang = np.array([0, 2 * math.pi / 3, 4 * math.pi / 3]) + _uniform(rng, -0.3, 0.3)
        cv2.fillPoly(big, [pts(np.full(3, Rk), ang)], 255, cv2.LINE_AA, 4)
    elif shape == "star":
        n = int(rng.integers(4, 7))
        ang = np.arange(2 * n) * math.pi / n
        radii = np.where(np.arange(2 * n) % 2 == 0, Rk, Rk * _uniform(rng, 0.4, 0.6))
        cv2.fillPoly(big, [pts(radii, ang)], 255, cv2.LINE_AA, 4)
    elif shape == "cross":
        t = _uniform(rng, 0.3, 0.45) * Rk
        h = Rk / math.sqrt(1 + (t / Rk) ** 2)
        for w_, h_ in ((h, t), (t, h)):
            cv2.rectangle(
                big,
                (int((ck - w_) * 16), int((ck - h_) * 16)),
                (int((ck + w_) * 16), int((ck + h_) * 16)),
                255,
                -1,
                cv2.LINE_AA,
                4,
            )
    else:  # blob: a random star-shaped polygon
        n = 12
        ang = np.arange(n) * 2 * math.pi / n
        radii = Rk * rng.uniform(0.55, 1.0, n)
        cv2.fillPoly(big, [pts(radii, ang)], 255, cv2.LINE_AA, 4)
    mask = cv2.resize(big, (S, S), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0

    # texture: a [0, 1] pattern mapped through a random two-colour palette
    period = _uniform(rng, 0.4, 0.8) * R + 3.0  # smooth enough for bilinear sampling
    phi = _uniform(rng, 0, math.pi)
    if texture == "stripes":
        u = xx * math.cos(phi) + yy * math.sin(phi)
        pat = 0.5 + 0.5 * np.sin(2 * math.pi * u / period)
    elif texture == "checker":
        u = xx * math.cos(phi) + yy * math.sin(phi)
        v = -xx * math.sin(phi) + yy * math.cos(phi)
        pat = 0.5 + 0.5 * np.sin(2 * math.pi * u / period) * np.sin(2 * math.pi * v / period)
    elif texture == "rings":
        pat = 0.5 + 0.5 * np.cos(
            2 * math.pi * np.hypot(xx - _uniform(rng, -R / 2, R / 2), yy) / period
        )
    else:
        pat = _smooth_noise(rng, S, S, period / 2)
    pat = 0.8 * pat + 0.2 * _smooth_noise(rng, S, S, max(R / 2, 2.0))  # break exact symmetry
    pat = pat.astype(np.float32)
    if colours is None:
        tex = _palette(rng, pat)
    else:
        a, b = (np.asarray(c, np.float32) for c in colours)
        tex = a + pat[..., None] * (b - a)
    return np.ascontiguousarray(tex), mask


@functools.lru_cache(maxsize=8)
def _grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs, ys


def _object_maps(spec: ClipSpec, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Sprite coordinates of every pixel at frame t (inverse similarity transform)."""
    return object_maps(spec.pose(t), spec.radius, spec.width, spec.height)


def object_maps(pose, radius: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Sprite coordinates of every pixel for an object at ``pose`` (cx, cy, angle, scale)."""
    xs, ys = _grid(width, height)
    cx, cy, th, s = pose
    c = (2 * radius + 5 - 1) / 2
    cos, sin = math.cos(th) / s, math.sin(th) / s
    dx, dy = xs - np.float32(cx), ys - np.float32(cy)
    ux = np.float32(cos) * dx + np.float32(sin) * dy + np.float32(c)
    uy = np.float32(-sin) * dx + np.float32(cos) * dy + np.float32(c)
    return ux, uy


def object_mask(spec: ClipSpec, t: int) -> np.ndarray:
    """Coverage of the object at frame t, (H, W) float32 in [0, 1]."""
    import cv2

    _, mask = _sprite(spec)
    ux, uy = _object_maps(spec, t)
    return cv2.remap(mask, ux, uy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def render_frame(spec: ClipSpec, t: int) -> np.ndarray:
    """Frame t (0-based) of a clip: (H, W, 3) uint8 BGR."""
    import cv2

    if not 0 <= t < spec.frames:
        raise ValueError(f"frame {t} outside 0..{spec.frames - 1}")
    xs, ys = _grid(spec.width, spec.height)
    tex, mx, my = _scene(spec)
    bg = cv2.remap(
        tex,
        xs + np.float32(mx - t * spec.bvx),
        ys + np.float32(my - t * spec.bvy),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT,
    )
    sprite, mask = _sprite(spec)
    ux, uy = _object_maps(spec, t)
    obj = cv2.remap(sprite, ux, uy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    a = cv2.remap(mask, ux, uy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    a = a[..., None]  # (H, W, 1)
    out = a * obj + (1.0 - a) * bg  # (H, W, 3)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def ground_truth_flow(spec: ClipSpec, t: int, *, return_mask: bool = False):
    """Exact forward flow from frame t to t+1: (H, W, 2) float32, x then y, in pixels.

    A scene point seen at pixel x in frame t is at x + flow(x) in frame t+1, so
    ``frame[t+1](x + flow(x)) ~= frame[t](x)`` (exactly, up to interpolation, except where
    the point becomes hidden). Pixels covered by the object (coverage > 0.5) move with
    the object's similarity transform, the others with the background drift. With
    ``return_mask`` also returns the object's coverage at frame t, (H, W) float32.
    """
    if not 0 <= t < spec.frames - 1:
        raise ValueError(f"flow index {t} outside 0..{spec.frames - 2} (N frames -> N-1 flows)")
    xs, ys = _grid(spec.width, spec.height)
    cx0, cy0, th0, s0 = spec.pose(t)
    cx1, cy1, th1, s1 = spec.pose(t + 1)
    # x' = c1 + (s1/s0) R(th1 - th0) (x - c0)
    k = s1 / s0
    cos, sin = k * math.cos(th1 - th0), k * math.sin(th1 - th0)
    dx, dy = xs.astype(np.float64) - cx0, ys.astype(np.float64) - cy0
    fx = cx1 + cos * dx - sin * dy - xs
    fy = cy1 + sin * dx + cos * dy - ys
    cover = object_mask(spec, t)
    on = cover > 0.5
    flow = np.empty((spec.height, spec.width, 2), np.float32)
    flow[..., 0] = np.where(on, fx, spec.bvx)
    flow[..., 1] = np.where(on, fy, spec.bvy)
    return (flow, cover) if return_mask else flow


def family_of(class_name: str) -> str:
    """Every v2 class is motion-defined (the v3 set adds the other families)."""
    if class_name not in CLASSES:
        raise UserError(f"unknown v2 synthetic class {class_name!r}")
    return "motion"


make_clip = clip_spec  # the generator interface of twostream.synthetic.writer (v3: clip)
