"""A small numpy evaluator of OpenCV-format LBP cascades (frontal faces in selfies).

Why it exists: OpenCV 5 dropped ``CascadeClassifier``, and scikit-image's
``Cascade`` pulled scikit-image and scipy (with its own OpenBLAS, ~50 MB) into
every clinic install and the desktop bundle just to find a face. This module
reads the same cascade file (``resources/cascades/lbpcascade_frontalface.xml``)
and follows scikit-image's ``Cascade.detect_multi_scale``: the cascade's
features grow with the window (the picture is not resized), windows step by
``round(step_ratio * scale)`` px, and overlapping detections are grouped,
keeping groups with enough neighbours. Each scale is evaluated stage by stage
on all surviving window positions at once (numpy), so a 640-px picture takes a
fraction of a second on one core.

Multi-block LBP (MB-LBP, the cascade's feature): a 3x3 grid of equal blocks;
each of the 8 outer blocks sets one bit when its sum is >= the centre block's
sum, clockwise from the top-left (bit 7) as in OpenCV. A weak classifier looks
its feature's 8-bit code up in a 256-bit set: a member scores the left leaf,
any other code the right one. Qt-free.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

STAGE_EPS = 1e-7            # as scikit-image: a window passes at threshold - eps
# (row, col) of the 8 outer blocks, bit 7 first (OpenCV's and scikit-image's order)
_LBP_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


@dataclass(frozen=True)
class Detection:
    """One object found: top-left (row ``r``, column ``c``) and size in pixels."""

    r: int
    c: int
    width: int
    height: int


@dataclass(frozen=True)
class Stage:
    """One boosted stage: its weak classifiers as parallel arrays."""

    threshold: float
    feature: np.ndarray         # (n,) index into the cascade's rectangles
    subsets: np.ndarray         # (n, 8) uint32: the 256-bit set of codes scoring ``left``
    left: np.ndarray            # (n,) float
    right: np.ndarray           # (n,) float


class LBPCascade:
    """An OpenCV ``opencv-cascade-classifier`` with ``featureType`` LBP (stumps only)."""

    def __init__(self, path: str | Path) -> None:
        root = ET.parse(str(path)).getroot()
        cascade = root.find("cascade")
        if cascade is None or (cascade.findtext("featureType") or "").strip() != "LBP":
            raise ValueError(f"{path} is not an OpenCV LBP cascade")
        self.window_height = int(cascade.findtext("height"))
        self.window_width = int(cascade.findtext("width"))
        # feature rectangles: x y w h, the block size of the 3x3 grid -> (r, c, w, h)
        rects = [[int(v) for v in f.findtext("rect").split()] for f in cascade.find("features")]
        self.rects = np.array([(y, x, w, h) for x, y, w, h in rects], dtype=np.int64).reshape(-1, 4)
        self.stages = tuple(_parse_stage(s) for s in cascade.find("stages"))
        if not self.stages:
            raise ValueError(f"{path} has no stages")

    # ------------------------------------------------------------------ detection

    def detect_multi_scale(self, img: np.ndarray, scale_factor: float = 1.2, step_ratio: float = 1.0,
                           min_size: tuple[int, int] = (24, 24), max_size: tuple[int, int] | None = None,
                           min_neighbour_number: int = 4,
                           intersection_score_threshold: float = 0.5) -> list[Detection]:
        """Objects in a grey picture (``min_size``/``max_size`` as (height, width)),
        grouped: a group of fewer than ``min_neighbour_number`` windows is dropped."""
        if img.ndim != 2:
            raise ValueError("detect_multi_scale needs a grey (2-D) picture")
        grey = np.ascontiguousarray(img if img.dtype == np.uint8 else np.clip(img, 0, 255).astype(np.uint8))
        integral = cv2.integral(grey, sdepth=cv2.CV_64F)   # (H+1, W+1), exact for any picture size
        max_size = max_size or grey.shape
        found: list[Detection] = []
        for scale in self.scales(min_size, max_size, scale_factor):
            found += self._detect_at_scale(integral, grey.shape, scale, step_ratio)
        return group_detections(found, intersection_score_threshold, min_neighbour_number)

    def scales(self, min_size: tuple[int, int], max_size: tuple[int, int],
               scale_factor: float) -> list[float]:
        """Window scales from ``min_size`` up by ``scale_factor`` while the window
        fits ``max_size`` (scikit-image starts at the smallest size, not at 1)."""
        if scale_factor <= 1.0:
            raise ValueError("scale_factor must be > 1")
        window = np.array((self.window_height, self.window_width), dtype=float)
        scale = max(1.0, float(np.max(np.asarray(min_size, dtype=float) / window)))
        out = []
        while (window * scale <= np.asarray(max_size) + 1e-6).all():
            out.append(scale)
            scale *= scale_factor
        return out

    def _detect_at_scale(self, integral: np.ndarray, shape: tuple[int, ...], scale: float,
                         step_ratio: float) -> list[Detection]:
        """Every window of one scale that passes all stages."""
        height = int(self.window_height * scale + 1e-6)
        width = int(self.window_width * scale + 1e-6)
        step = max(1, int(round(step_ratio * scale)))
        rows = np.arange(0, shape[0] - height, step)
        cols = np.arange(0, shape[1] - width, step)
        if rows.size == 0 or cols.size == 0:
            return []
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        rr, cc = rr.ravel(), cc.ravel()
        rects = (self.rects * scale + 1e-6).astype(np.int64)   # truncated, as scikit-image does
        for stage in self.stages:
            keep = self._stage_sum(integral, rr, cc, rects, stage) >= stage.threshold - STAGE_EPS
            rr, cc = rr[keep], cc[keep]
            if rr.size == 0:
                return []
        return [Detection(int(r), int(c), width, height) for r, c in zip(rr, cc)]

    @staticmethod
    def _stage_sum(integral: np.ndarray, rr: np.ndarray, cc: np.ndarray, rects: np.ndarray,
                   stage: Stage) -> np.ndarray:
        """The stage's score for every window (top-left at rr, cc)."""
        total = np.zeros(rr.size)
        for k in range(stage.feature.size):
            r, c, w, h = rects[stage.feature[k]]
            code = mb_lbp(integral, rr + r, cc + c, int(w), int(h))
            word = stage.subsets[k][code >> 5]
            member = ((word >> (code & 31).astype(np.uint32)) & 1).astype(bool)
            total += np.where(member, stage.left[k], stage.right[k])
        return total


def mb_lbp(integral: np.ndarray, r: np.ndarray, c: np.ndarray, w: int, h: int) -> np.ndarray:
    """The MB-LBP code (0..255) of the 3x3 grid of ``w`` x ``h`` blocks whose top-left
    corner is (r, c), for many corners at once; ``integral`` is ``cv2.integral``'s."""
    # corners of the 4x4 grid lines: ys[i] = r + i*h, xs[j] = c + j*w
    ys = [r + i * h for i in range(4)]
    xs = [c + j * w for j in range(4)]

    def block(i: int, j: int) -> np.ndarray:
        return (integral[ys[i + 1], xs[j + 1]] - integral[ys[i], xs[j + 1]]
                - integral[ys[i + 1], xs[j]] + integral[ys[i], xs[j]])

    centre = block(1, 1)
    code = np.zeros(np.shape(r), dtype=np.int64)
    for bit, (dr, dc) in zip(range(7, -1, -1), _LBP_OFFSETS):
        code |= (block(1 + dr, 1 + dc) >= centre).astype(np.int64) << bit
    return code


def group_detections(found: list[Detection], intersection_score_threshold: float = 0.5,
                     min_neighbour_number: int = 4) -> list[Detection]:
    """Overlapping windows grouped into one (their mean box), as scikit-image does:
    each window joins the group whose mean box it overlaps most (intersection over
    the smaller box's area, above the threshold) or starts a new group; groups of
    fewer than ``min_neighbour_number`` windows are false detections and dropped."""
    groups: list[list[int]] = []        # per group: count, r, c, width, height sums
    for det in found:
        best, best_score = -1, intersection_score_threshold
        for i, g in enumerate(groups):
            score = _intersection_score(det, _mean(g))
            if score > best_score:
                best, best_score = i, score
        if best < 0:
            groups.append([1, det.r, det.c, det.width, det.height])
        else:
            g = groups[best]
            g[0] += 1
            g[1] += det.r
            g[2] += det.c
            g[3] += det.width
            g[4] += det.height
    return [_mean(g) for g in groups if g[0] >= min_neighbour_number]


def _mean(group: list[int]) -> Detection:
    n = group[0]
    return Detection(group[1] // n, group[2] // n, group[3] // n, group[4] // n)


def _intersection_score(a: Detection, b: Detection) -> float:
    """Intersection area over the smaller box's area (0 when apart)."""
    dr = min(a.r + a.height, b.r + b.height) - max(a.r, b.r)
    dc = min(a.c + a.width, b.c + b.width) - max(a.c, b.c)
    if dr <= 0 or dc <= 0:
        return 0.0
    return dr * dc / float(min(a.width * a.height, b.width * b.height))


def _parse_stage(node: ET.Element) -> Stage:
    """One ``<stages>/<_>`` element: stumps with 8 signed 32-bit subset words each."""
    feats, subsets, left, right = [], [], [], []
    for weak in node.find("weakClassifiers"):
        nodes = [int(v) for v in weak.findtext("internalNodes").split()]
        if len(nodes) != 11:
            raise ValueError("only depth-1 LBP stumps (3 + 8 numbers per node) are supported")
        leaves = [float(v) for v in weak.findtext("leafValues").split()]
        feats.append(nodes[2])
        subsets.append([v & 0xFFFFFFFF for v in nodes[3:]])
        left.append(leaves[0])
        right.append(leaves[1])
    return Stage(threshold=float(node.findtext("stageThreshold")), feature=np.array(feats, dtype=np.int64),
                 subsets=np.array(subsets, dtype=np.uint32), left=np.array(left), right=np.array(right))
