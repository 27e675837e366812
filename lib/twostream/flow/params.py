"""Dual TV-L1 parameters: the presets (the authors' ``paper`` settings, a ``fast`` one) and their overrides, shared by both backends."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from twostream.core.errors import UserError


@dataclass(frozen=True)
class TVL1Params:
    """Every parameter of OpenCV's CPU ``DualTVL1OpticalFlow`` (same names, snake_case).

    ``lambda_`` has a trailing underscore because ``lambda`` is a Python keyword.
    """

    tau: float = 0.25  # time step of the dual (numerical, stable for <= 0.25)
    lambda_: float = 0.15  # weight of the data term (higher: less smooth)
    theta: float = 0.3  # coupling between the two primal variables u and v
    nscales: int = 5  # pyramid levels
    warps: int = 5  # re-linearisations (warps) per level
    epsilon: float = 0.01  # stop when the mean squared update of u is below epsilon**2
    inner_iterations: int = 30  # primal-dual iterations between two median filterings
    outer_iterations: int = 10  # median-filter + inner loop repetitions per warp
    scale_step: float = 0.8  # pyramid down-sampling factor
    gamma: float = 0.0  # illumination term weight (0 = off, like the authors)
    median_filtering: int = 5  # median kernel applied to u before each inner loop (1 = off)

    def replace(self, **overrides) -> TVL1Params:
        names = {f.name for f in dataclasses.fields(self)}
        if "lambda" in overrides:  # accept the natural spelling when passed via **dict
            overrides["lambda_"] = overrides.pop("lambda")
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise UserError(f"unknown TV-L1 parameter(s) {unknown}; known: {sorted(names)}")
        return dataclasses.replace(self, **overrides)

    @property
    def iterations_per_warp(self) -> int:
        return self.inner_iterations * self.outer_iterations


# The authors ran the CUDA implementation (cv::cuda::OpticalFlowDual_TVL1) with its
# defaults: tau 0.25, lambda 0.15, theta 0.3, nscales 5, warps 5, epsilon 0.01,
# iterations 300, scaleStep 0.8, gamma 0. The CUDA loop per warp is
#     for n < iterations while error > eps^2 * area: primal step; dual step
# with NO median filtering. The CPU API splits that loop into
#     for outer < outerIterations: medianBlur(u); for inner < innerIterations: ...
# sharing the same stopping test, so "300 iterations, no median" maps exactly onto
# innerIterations = 300, outerIterations = 1, medianFiltering = 1 (a 1x1 median is the
# identity and OpenCV skips it). OpenCV's CPU defaults (30 x 10 with a 5x5 median every 30
# iterations) are a different, more smoothed, variant and are not what the paper used.
PRESETS: dict[str, TVL1Params] = {
    "paper": TVL1Params(inner_iterations=300, outer_iterations=1, median_filtering=1),
    # A 4-level pyramid halving each time (coarsest 1/8, same reach as paper's 0.8^4 = 0.41
    # for large motions but far fewer pixels), 3 warps of at most 20 iterations. Measured by
    # benchmarks/flow.py (opencv, 320x240, 1 thread; numbers in the module docstring).
    "fast": TVL1Params(
        nscales=4,
        scale_step=0.5,
        warps=3,
        inner_iterations=20,
        outer_iterations=1,
        median_filtering=1,
    ),
    # OpenCV's CPU defaults, for reference.
    "opencv_cpu": TVL1Params(),
}


def get_params(preset: str | TVL1Params = "paper", **overrides) -> TVL1Params:
    """A preset by name (or a TVL1Params) with keyword overrides applied."""
    if isinstance(preset, TVL1Params):
        base = preset
    else:
        try:
            base = PRESETS[preset]
        except KeyError:
            raise UserError(
                f"unknown TV-L1 preset {preset!r}; known presets: {sorted(PRESETS)}"
            ) from None
    return base.replace(**overrides) if overrides else base


BACKENDS = ("opencv", "torch")
