"""Is this a fundus photograph, and is it good enough to grade?

Two steps, both Qt-free and fast (a few milliseconds: the field of view is
found on a copy scaled to ``WORK_SIDE`` pixels, quality is measured with the
field rescaled to ``ANALYSIS_DIAMETER`` pixels):

1. :func:`find_field_of_view` finds the round, lit field of view (FOV) that every
   fundus camera produces: threshold the blurred brightness at ~10% of its
   maximum, keep the largest blob, and fit a circle to its convex hull's curved
   edge, leaving out points on the frame border and on straight cuts (so a
   circle cut at the top and bottom, as in 1024x685 camera exports, or padded
   with black bars, as in eyepacs-256, still gets its true centre and radius).
   When the blob is not round (a grey or noisy surround merged with the
   retina, ~7% of eyepacs-256), stricter thresholds on a more blurred image are
   tried and the roundest result wins.
2. :func:`assess_quality` first asks whether the picture is a fundus photograph
   at all (a round lit field on a dark surround, not blue/green inside) and
   answers NOT_FUNDUS for faces, documents, screenshots and blank frames; then
   checks resolution, field coverage, exposure, shadows and focus, each with a
   reason code and one sentence of advice for the nurse. Focus and shadow
   measures are ratios, so they mean the same on raw camera photographs and on
   contrast-enhanced exports.

Every number measured goes into ``QualityReport.metrics`` so the thresholds can
be audited and re-tuned (``scripts/quality_agreement.py``, docs/quality-gate.md).
The thresholds are deliberately few and loose: the gate must not reject the
good photographs of a camera it has never seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import cv2
import numpy as np

from .records import QualityReport, Status

WORK_SIDE = 256                 # long side of the analysis copy

# --- field of view
PRIMARY_FRACTION = 0.10         # threshold as a fraction of the bright end of the image
FALLBACK_FRACTIONS = (0.2, 0.3, 0.45)
MIN_CIRCULARITY = 0.97          # below this, stricter thresholds are tried too (grey surrounds)
MIN_BLOB_FRACTION = 0.04        # of the work image
MAX_BORDER_LIT = 0.6            # a lit region along more of the border is a rectangular crop: all field
MIN_BORDER_LIT_CROP = 0.3       # ... and so is one along > 30% of it whose circle fit is poor:
MIN_CROP_EDGE_FIT = 0.5         # little of the circle traced by a real edge, or the "circle" mostly unlit

# --- "is it a fundus photograph"
MIN_FUNDUS_CIRCULARITY = 0.86
MAX_SURROUND_RATIO = 0.35       # surround brightness / FOV brightness
MIN_SURROUND_FRACTION = 0.01    # a fundus frame shows some dark surround (eyepacs crops leave only corners)
MIN_RED_DOMINANCE = 0.9         # mean R / mean B inside the FOV (eyepacs-256 is colour-balanced, ~1.0)

# --- gradability
MIN_FOV_DIAMETER_PX = 150       # in the original photograph
MIN_IMAGE_SIDE_PX = 200
MIN_COVERAGE = 0.55             # lit fraction of the fitted circle
MIN_BRIGHTNESS = 0.12           # mean luminance inside FOV, 0-1
MAX_BRIGHTNESS = 0.80           # mean luminance inside FOV, 0-1 (washed out)
MAX_SATURATED = 0.20            # fraction of FOV pixels blown out
MAX_DARK_FRACTION = 0.16        # fraction of FOV below 40% of its median illumination
MIN_VESSEL_CONTRAST = 0.08      # dark thin structures (vessels) relative to the FOV's contrast
MIN_FINE_DETAIL = 0.03          # finest-scale detail relative to the FOV's contrast
# With the learned gate (``fundus_known``) its quality head judges focus, which it does better than
# one global measure (EyeQ rejects, docs/quality-gate.md); the hand-made focus rule then keeps only
# the plainly out-of-focus photographs, below these limits, for the clear "out of focus" reason.
# At 0.08 / 0.03 it refused 10% of odir-384's good photographs (hazy-looking but readable cameras).
GATED_MIN_VESSEL_CONTRAST = 0.05
GATED_MIN_FINE_DETAIL = 0.015
ANALYSIS_DIAMETER = 256         # the FOV is rescaled to this diameter before measuring quality

ADVICE = {
    "not_fundus": "This is not a fundus photograph: check the file and take a photograph of the retina",
    "external_eye": "Photograph of the front of the eye: a fundus photograph is needed to grade diabetic "
                    "retinopathy; take a photograph of the retina",
    "no_field_of_view": "The round retina image was not found: retake the photograph with the camera aligned to the pupil",
    "low_resolution": "Image too small to grade: retake it, or export it from the camera at full size",
    "small_field": "Too little of the retina is visible: dilate the pupil and retake, or refer for an in-person examination",
    "dark": "Too dark: dilate the pupil and retake, or refer for an in-person examination",
    "overexposed": "Too bright (washed out): lower the flash and retake",
    "uneven_illumination": "Part of the retina is in shadow: realign the camera with the pupil and retake; dilate if it persists",
    "blurred": "Out of focus: clean the lens and retake; dilate the pupil if it persists",
    "poor_quality": "Not clear enough to grade (the quality check judged it unusable): retake the photograph; "
                    "dilate the pupil if it persists",
    "unfamiliar": "Unfamiliar photograph: check it by eye. It is unlike the fundus photographs EyeScreen was "
                  "trained on (another camera or an unusual picture), so it was not graded",
}
_ADVICE_ORDER = tuple(ADVICE)


@dataclass(frozen=True)
class FieldOfView:
    """The round lit field of view in original-image pixel coordinates.

    ``radius`` is that of the fitted circle, which may extend beyond the frame;
    ``coverage`` is the lit fraction of that full circle (cut-off parts count as
    missing); ``circularity`` is how well the lit blob matches the circle
    clipped to the frame (intersection over union, 1 = perfect; a shadowed
    crescent scores low); ``edge_fit`` is the share of the circle's in-frame
    circumference actually traced by the blob's edge (a fundus camera's sharp
    round aperture scores high even when half the field is in shadow; an oval
    face or a rounded rectangle does not); ``bbox`` is the circle's bounding
    square ``(x0, y0, x1, y1)``, exclusive, possibly outside the frame;
    ``lit_box`` the lit blob's bounding box. ``mask`` is the lit blob at analysis scale (``scale`` original
    pixels per mask pixel); use :meth:`full_mask` for the original size.
    """

    cx: float
    cy: float
    radius: float
    coverage: float
    circularity: float
    bbox: tuple[int, int, int, int]
    width: int
    height: int
    edge_fit: float = 1.0
    lit_box: tuple[int, int, int, int] = (0, 0, 0, 0)
    threshold: float = 0.0
    fallback: bool = False
    scale: float = 1.0
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)
    work: np.ndarray | None = field(default=None, compare=False, repr=False)  # the work_copy it was found on

    @property
    def diameter(self) -> float:
        return 2.0 * self.radius

    def circle_mask(self, height: int | None = None, width: int | None = None) -> np.ndarray:
        """Boolean disc of the fitted circle at the given (default: original) size."""
        h, w = height or self.height, width or self.width
        sy, sx = h / self.height, w / self.width
        yy, xx = np.ogrid[:h, :w]
        return ((xx + 0.5) / sx - self.cx) ** 2 + ((yy + 0.5) / sy - self.cy) ** 2 <= self.radius ** 2

    def full_mask(self) -> np.ndarray:
        """The lit blob (bool) at the original image size."""
        if self.mask is None:
            return self.circle_mask()
        return cv2.resize(self.mask.astype(np.uint8), (self.width, self.height),
                          interpolation=cv2.INTER_NEAREST).astype(bool)


# --------------------------------------------------------------------------- field of view


def channel_max(pixels: np.ndarray) -> np.ndarray:
    """Brightest channel of each pixel (last axis of length 3): the same as
    ``pixels.max(axis=-1)``, 15x faster (numpy reduces a short last axis slowly,
    and this runs on every photograph of a batch)."""
    return np.maximum(np.maximum(pixels[..., 0], pixels[..., 1]), pixels[..., 2])


def work_copy(rgb: np.ndarray, side: int = WORK_SIDE) -> tuple[np.ndarray, float]:
    """A copy with long side ``side`` (never upscaled) and original-pixels-per-work-pixel."""
    h, w = rgb.shape[:2]
    scale = max(h, w) / side
    if scale <= 1.0:
        return rgb, 1.0
    size = (max(1, round(w / scale)), max(1, round(h / scale)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return small, w / size[0]


def find_field_of_view(rgb: np.ndarray, work: tuple[np.ndarray, float] | None = None) -> FieldOfView | None:
    """The circular field of view of a fundus photograph, or None when there is
    no round lit region (blank frame, document, most ordinary photographs).
    ``work`` is :func:`work_copy` of ``rgb`` when the caller already made it."""
    small, scale = work or work_copy(rgb)
    brightness = channel_max(small)
    best = _fov_at(brightness, cv2.GaussianBlur(brightness, (5, 5), 0), PRIMARY_FRACTION)
    if best is None or best[2] < MIN_CIRCULARITY:
        heavy = cv2.medianBlur(cv2.GaussianBlur(brightness, (9, 9), 0), 5)
        for frac in FALLBACK_FRACTIONS:
            cand = _fov_at(brightness, heavy, frac, fallback=True)
            if cand is not None and (best is None or cand[2] > best[2] + 0.02):
                best = cand
    if best is None:
        return None
    (cx, cy, r), mask, circ, thr, fb = best
    h, w = rgb.shape[:2]
    disc_area = np.pi * r * r
    coverage = float(min(1.0, mask.sum() / disc_area)) if disc_area > 0 else 0.0
    edge_fit = _edge_fit(mask, (cx, cy, r))
    ys, xs = np.nonzero(mask)
    lit_box = (int(xs.min() * scale), int(ys.min() * scale),
               min(w, int(np.ceil((xs.max() + 1) * scale))), min(h, int(np.ceil((ys.max() + 1) * scale))))
    cx, cy, r = cx * scale, cy * scale, r * scale
    bbox = (int(np.floor(cx - r)), int(np.floor(cy - r)), int(np.ceil(cx + r)), int(np.ceil(cy + r)))
    return FieldOfView(cx=float(cx), cy=float(cy), radius=float(r), coverage=coverage,
                       circularity=float(circ), bbox=bbox, width=w, height=h, edge_fit=edge_fit,
                       lit_box=lit_box, threshold=thr, fallback=fb, scale=scale, mask=mask, work=small)


def field_of_view_or_frame(rgb: np.ndarray, work: tuple[np.ndarray, float] | None = None) -> FieldOfView:
    """The round field when there is one, else the whole frame as the field
    (:func:`frame_field_of_view`): for a picture the learned gate already
    called a fundus photograph, a rectangular crop from inside the retina
    has no dark surround and no round edge, yet it is all retina. A lit region
    that runs along most of the frame's border is such a crop too (dark
    vessels or a shadow inside it can leave a blob whose fitted circle is
    meaningless), and so is one along a good part of the border whose fitted
    circle is poor (dark vessels and a dark rim in a crop's corners break the
    lit region into a blob whose "circle" is traced by no real edge, or is
    mostly unlit: an aperture's round edge traces its circle, eyepacs-256's
    clipped circles score edge_fit 0.75-1). A crop is all retina: its
    coverage is 1, so it is never "too little of the retina visible"."""
    fov = find_field_of_view(rgb, work)
    if fov is None or fov.mask is None:
        return frame_field_of_view(rgb, work) if fov is None else fov
    lit = _border_lit(fov.mask)
    if lit > MAX_BORDER_LIT or (lit > MIN_BORDER_LIT_CROP and (fov.edge_fit < MIN_CROP_EDGE_FIT
                                                               or fov.coverage < MIN_COVERAGE)):
        return frame_field_of_view(rgb, work)
    return fov


def _border_lit(mask: np.ndarray) -> float:
    """Share of the frame's border pixels inside the lit region."""
    return float(np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]]).mean())


def frame_field_of_view(rgb: np.ndarray, work: tuple[np.ndarray, float] | None = None) -> FieldOfView:
    """The whole frame as the field of view: the circle through its corners,
    so preprocessing keeps every pixel (the square around it is padded with
    black) and quality is measured over the whole frame. ``coverage`` is 1
    (the frame is all retina) and ``edge_fit`` 0 (no round edge was seen)."""
    small, scale = work or work_copy(rgb)
    h, w = rgb.shape[:2]
    cx, cy, r = w / 2.0, h / 2.0, float(np.hypot(w, h)) / 2.0
    bbox = (int(np.floor(cx - r)), int(np.floor(cy - r)), int(np.ceil(cx + r)), int(np.ceil(cy + r)))
    return FieldOfView(cx=cx, cy=cy, radius=r, coverage=1.0, circularity=1.0, bbox=bbox, width=w, height=h,
                       edge_fit=0.0, lit_box=(0, 0, w, h), threshold=0.0, fallback=True, scale=scale,
                       mask=np.ones(small.shape[:2], bool), work=small)


def _fov_at(brightness: np.ndarray, blurred: np.ndarray, fraction: float, fallback: bool = False):
    """Largest blob above ``fraction`` of the bright end, its fitted circle and
    circularity, or None when there is no usable blob."""
    top = float(np.percentile(blurred, 99.5))
    if top < 8:
        return None
    thr = max(fraction * top, 4.0)
    mask = _largest_blob(blurred > thr)
    if mask is None or mask.mean() < MIN_BLOB_FRACTION:
        return None
    hull = _convex_hull(mask)
    circle = _fit_circle(hull)
    if circle is None:
        return None
    circ = _circularity(hull, circle)
    return circle, mask, circ, thr, fallback


def _convex_hull(mask: np.ndarray) -> np.ndarray:
    """The blob's filled convex hull: a field with a dark shadow or crescent inside
    it is still round, and its circle is still the camera's aperture."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.convexHull(np.concatenate(contours))
    out = np.zeros(mask.shape, np.uint8)
    cv2.fillConvexPoly(out, hull, (1,))
    return out.astype(bool)


def _largest_blob(binary: np.ndarray) -> np.ndarray | None:
    binary = cv2.morphologyEx(binary.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n <= 1:
        return None
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    blob = (labels == biggest).astype(np.uint8)
    # fill holes (dark macula, haemorrhages, vessels) by filling the outer contour
    contours, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(blob)
    cv2.drawContours(filled, contours, -1, (1,), thickness=cv2.FILLED)
    return filled.astype(bool)


def _fit_circle(mask: np.ndarray) -> tuple[float, float, float] | None:
    """Robust least-squares circle through the blob's curved edge.

    Edge points on the frame's border, and on long straight horizontal or
    vertical runs (where an export cropped or padded the camera's circle), are
    not on the circle and are left out; the fit is then repeated without the
    points that disagree most (eyelash shadows, notches)."""
    pts = _curved_edge_points(mask)
    if pts is None:
        return None
    circle = _lsq_circle(pts)
    for _ in range(2):
        if circle is None:
            return None
        resid = np.abs(np.hypot(pts[:, 0] - circle[0], pts[:, 1] - circle[1]) - circle[2])
        keep = resid <= max(1.5, 2.5 * float(np.median(resid)))
        if keep.sum() < 20:
            break
        pts = pts[keep]
        circle = _lsq_circle(pts)
    h, w = mask.shape
    if circle is None or circle[2] > 2.0 * max(h, w) or circle[2] < 4:
        return None
    return circle


def _curved_edge_points(mask: np.ndarray) -> np.ndarray | None:
    h, w = mask.shape
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    pts = np.concatenate([c.reshape(-1, 2) for c in contours])
    pts = pts[(pts[:, 0] > 0) & (pts[:, 0] < w - 1) & (pts[:, 1] > 0) & (pts[:, 1] < h - 1)]
    if len(pts) < 20:
        return None
    ys, xs = np.nonzero(mask)
    max_run = 0.25 * min(np.ptp(xs) + 1, np.ptp(ys) + 1)
    straight = _on_long_run(pts[:, 0], pts[:, 1], max_run) | _on_long_run(pts[:, 1], pts[:, 0], max_run)
    pts = pts[~straight].astype(np.float64) + 0.5
    if len(pts) < 20 or _angular_span(pts, xs.mean() + 0.5, ys.mean() + 0.5) < np.pi / 2:
        return None
    return pts


def _on_long_run(along: np.ndarray, line: np.ndarray, max_run: float) -> np.ndarray:
    """Points lying on a run of more than ``max_run`` consecutive edge pixels
    sharing the same ``line`` coordinate (a straight cut)."""
    out = np.zeros(len(along), bool)
    order = np.lexsort((along, line))
    a, ln = along[order], line[order]
    breaks = np.flatnonzero((np.diff(ln) != 0) | (np.diff(a) > 1)) + 1
    lengths = np.diff(np.concatenate(([0], breaks, [len(a)])))        # each run's length, in order
    out[order[np.repeat(lengths > max_run, lengths)]] = True          # (a loop over runs: 1-2 ms a photograph)
    return out


def _lsq_circle(pts: np.ndarray) -> tuple[float, float, float] | None:
    x, y = pts[:, 0], pts[:, 1]
    a = np.column_stack([x, y, np.ones_like(x)])
    (c0, c1, c2), *_ = np.linalg.lstsq(a, x * x + y * y, rcond=None)
    cx, cy = c0 / 2, c1 / 2
    r2 = c2 + cx * cx + cy * cy
    return (float(cx), float(cy), float(np.sqrt(r2))) if r2 > 0 else None


def _angular_span(points: np.ndarray, cx: float, cy: float) -> float:
    """How much of the full turn the edge points cover, seen from the blob's centroid."""
    angles = np.arctan2(points[:, 1] - cy, points[:, 0] - cx)
    hist, _ = np.histogram(angles, bins=36, range=(-np.pi, np.pi))
    return float((hist > 0).sum() * 2 * np.pi / 36)


def _edge_fit(mask: np.ndarray, circle: tuple[float, float, float], bins: int = 90) -> float:
    """Share of the circle's in-frame circumference (in angle bins) that has a
    blob edge point within 2% of the radius on it."""
    cx, cy, r = circle
    h, w = mask.shape
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    pts = np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float64) + 0.5
    resid = np.abs(np.hypot(pts[:, 0] - cx, pts[:, 1] - cy) - r)
    on = pts[resid <= max(1.5, 0.02 * r)]
    edges = np.linspace(-np.pi, np.pi, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    px, py = cx + r * np.cos(centres), cy + r * np.sin(centres)
    in_frame = (px >= 1) & (px <= w - 1) & (py >= 1) & (py <= h - 1)
    if not in_frame.any():
        return 0.0
    hit, _ = np.histogram(np.arctan2(on[:, 1] - cy, on[:, 0] - cx), bins=edges)
    return float(((hit > 0) & in_frame).sum() / in_frame.sum())


def _circularity(mask: np.ndarray, circle: tuple[float, float, float]) -> float:
    """IoU of the blob with the fitted disc, the disc clipped to the frame and to
    the blob's bounding box (straight crops are not held against a photograph)."""
    cx, cy, r = circle
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    yy, xx = np.ogrid[y0:y1, x0:x1]
    disc = (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= r * r
    blob = mask[y0:y1, x0:x1]
    union = np.logical_or(disc, blob).sum()
    return float(np.logical_and(disc, blob).sum() / union) if union else 0.0


# --------------------------------------------------------------------------- quality


def assess_quality(rgb: np.ndarray, fov: FieldOfView | None, fundus_known: bool = False) -> QualityReport:
    """The gate's verdict: NOT_FUNDUS, UNGRADABLE (with reasons and advice) or OK.

    ``fov`` is what :func:`find_field_of_view` (or :func:`field_of_view_or_frame`)
    returned for the same image (passed in so the caller can reuse it for
    preprocessing). ``fundus_known``: the learned gate (``core.gate``) already
    said it is a fundus photograph, so the hand-made "looks like a fundus"
    rules (round field, dark surround, warm colour), which refuse many
    cameras' good frames, are skipped; only gradability is judged here.
    A picture too small to judge at all is ``low_resolution`` first.
    """
    small = fov.work if fov is not None and fov.work is not None and fov.width == rgb.shape[1] \
        and fov.height == rgb.shape[0] else work_copy(rgb)[0]
    metrics: dict[str, float] = {"width": float(rgb.shape[1]), "height": float(rgb.shape[0])}
    if max(rgb.shape[:2]) < MIN_IMAGE_SIDE_PX:
        return report(Status.UNGRADABLE, ["low_resolution"], metrics)
    if fov is None:
        return _no_fov_verdict(small, metrics)
    disc = fov.mask if fov.mask is not None and fov.mask.shape == small.shape[:2] else \
        fov.circle_mask(*small.shape[:2])
    metrics.update(_fov_metrics(fov))
    metrics.update(fundus_likeness(small, disc))
    if not fundus_known and not _looks_like_fundus(metrics):
        return report(Status.NOT_FUNDUS, ["not_fundus"], metrics)
    img, inner = analysis_copy(rgb, fov)
    metrics.update(exposure_metrics(img, inner))
    metrics.update(detail_metrics(img, inner))
    reasons = gradability_reasons(metrics, fundus_known)
    return report(Status.UNGRADABLE if reasons else Status.OK, reasons, metrics)


def _no_fov_verdict(small: np.ndarray, metrics: dict[str, float]) -> QualityReport:
    """No round lit region: a fundus photograph's colours without a circle means a
    badly aligned camera (ungradable); anything else is not a fundus photograph."""
    whole = np.ones(small.shape[:2], bool)
    metrics.update(fundus_likeness(small, whole))
    metrics["fov_brightness"] = float(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).mean() / 255.0)
    warm = metrics["red_dominance"] >= 1.4 and metrics["green_over_blue"] >= 1.0
    if warm and metrics["fov_brightness"] > 0.05 and metrics["colour_spread"] > 0.02:
        return report(Status.UNGRADABLE, ["no_field_of_view"], metrics)
    return report(Status.NOT_FUNDUS, ["not_fundus"], metrics)


def _fov_metrics(fov: FieldOfView) -> dict[str, float]:
    return {"fov_diameter": fov.diameter, "coverage": fov.coverage, "circularity": fov.circularity,
            "edge_fit": fov.edge_fit, "fov_fallback": float(fov.fallback)}


def fundus_likeness(small: np.ndarray, disc: np.ndarray) -> dict[str, float]:
    """Colour statistics that separate a retina (warm, red > green > blue, on a dark
    surround) from everything else."""
    pix = small[disc].astype(np.float64)
    out = small[~disc].astype(np.float64)
    mean = pix.mean(axis=0) if len(pix) else np.zeros(3)
    inside = float(channel_max(pix).mean()) if len(pix) else 0.0
    surround = float(channel_max(out).mean()) if len(out) else 0.0
    return {
        "red_dominance": float((mean[0] + 1) / (mean[2] + 1)),
        "green_over_blue": float((mean[1] + 1) / (mean[2] + 1)),
        "surround_ratio": surround / inside if inside > 0 else 1.0,
        "surround_fraction": float(1.0 - disc.mean()),
        "colour_spread": float(np.std(pix.mean(axis=1)) / 255.0) if len(pix) else 0.0,
    }


def _looks_like_fundus(m: dict[str, float]) -> bool:
    return (m["circularity"] >= MIN_FUNDUS_CIRCULARITY
            and m["surround_fraction"] >= MIN_SURROUND_FRACTION
            and m["surround_ratio"] <= MAX_SURROUND_RATIO
            and m["red_dominance"] >= MIN_RED_DOMINANCE)


def analysis_copy(rgb: np.ndarray, fov: FieldOfView) -> tuple[np.ndarray, np.ndarray]:
    """The photograph rescaled so the field of view is ``ANALYSIS_DIAMETER`` px
    across (never enlarged), and the inside of the field (the circle within the
    lit region's bounding box, eroded away from its rim): shadows inside the
    circle count, padding an export added outside it does not. Measuring at a fixed field scale makes the quality numbers the same
    for a 3872 px camera original, its 1024 px export and a 256 px crop."""
    scale = min(1.0, ANALYSIS_DIAMETER / max(fov.diameter, 1.0))
    img = rgb
    if scale < 1.0:
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        img = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    disc = fov.circle_mask(h, w)
    x0, y0, x1, y1 = (round(v * w / fov.width) for v in fov.lit_box)
    box = np.zeros((h, w), bool)
    box[y0:y1, x0:x1] = True   # leaves out black padding an export added beside the field
    disc &= box
    inner = cv2.erode(disc.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    if inner.sum() < 50:
        inner = disc
    return img, inner


def exposure_metrics(img: np.ndarray, inner: np.ndarray) -> dict[str, float]:
    """Brightness, blown-out fraction and shadowed fraction inside the field of view.

    ``dark_fraction`` is the share of the field whose smoothed illumination is
    below 40% of the field's median: a shadow, a dark crescent from a small
    pupil or a misaligned camera, which contrast enhancement does not remove."""
    if inner.sum() == 0:
        return {"fov_brightness": 0.0, "saturated": 0.0, "dark_fraction": 1.0}
    luma = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    vals = luma[inner]
    illumination = _illumination(luma)[inner]
    median = float(np.median(illumination))
    return {
        "fov_brightness": float(vals.mean() / 255.0),
        "saturated": float((vals >= 250).mean()),
        "dark_fraction": float((illumination < 0.4 * median).mean()) if median > 0 else 1.0,
    }


def _illumination(luma: np.ndarray) -> np.ndarray:
    """Slowly varying brightness (Gaussian, sigma 20 px at analysis scale),
    computed at a quarter of the size because it is smooth anyway."""
    h, w = luma.shape
    quarter = cv2.resize(luma, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    smooth = cv2.GaussianBlur(quarter.astype(np.float32), (0, 0), 5)
    return cv2.resize(smooth, (w, h), interpolation=cv2.INTER_LINEAR)


def detail_metrics(img: np.ndarray, inner: np.ndarray) -> dict[str, float]:
    """How visible the fine structure is, relative to the field's overall contrast.

    ``vessel_contrast``: mean black-top-hat response of the green channel (thin
    dark structures: vessels, haemorrhages) divided by the green channel's
    standard deviation. ``fine_detail``: mean difference between the green
    channel and its 1-pixel Gaussian blur, divided by the same. Both fall when
    the photograph is out of focus, hazy (cataract) or smeared, and being ratios
    they do not depend on how strongly an export was contrast-enhanced.
    """
    green = img[:, :, 1].astype(np.float32)
    spread = float(green[inner].std()) if inner.any() else 0.0
    if spread < 1e-3:
        return {"vessel_contrast": 0.0, "fine_detail": 0.0}
    tophat = cv2.morphologyEx(green, cv2.MORPH_BLACKHAT,
                              cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (11, 11)))
    fine = np.abs(green - cv2.GaussianBlur(green, (0, 0), 1.0))
    return {"vessel_contrast": float(tophat[inner].mean() / spread),
            "fine_detail": float(fine[inner].mean() / spread)}


def gradability_reasons(m: Mapping[str, float], fundus_known: bool = False) -> list[str]:
    """The hand-made reasons a fundus photograph cannot be graded, from its
    measures (:func:`assess_quality`'s metrics). ``fundus_known``: the learned
    gate judges quality too, so only plain blur is "out of focus" here."""
    reasons = []
    vessel_limit, detail_limit = ((GATED_MIN_VESSEL_CONTRAST, GATED_MIN_FINE_DETAIL) if fundus_known
                                  else (MIN_VESSEL_CONTRAST, MIN_FINE_DETAIL))
    if m["fov_diameter"] < MIN_FOV_DIAMETER_PX or max(m["width"], m["height"]) < MIN_IMAGE_SIDE_PX:
        reasons.append("low_resolution")
    if m["coverage"] < MIN_COVERAGE:
        reasons.append("small_field")
    if m["fov_brightness"] < MIN_BRIGHTNESS:
        reasons.append("dark")
    if m["saturated"] > MAX_SATURATED or m["fov_brightness"] > MAX_BRIGHTNESS:
        reasons.append("overexposed")
    if m["dark_fraction"] > MAX_DARK_FRACTION:
        reasons.append("uneven_illumination")
    if m["vessel_contrast"] < vessel_limit or m["fine_detail"] < detail_limit:
        reasons.append("blurred")
    return reasons


def report(status: Status, reasons: list[str], metrics: dict[str, float]) -> QualityReport:
    """One advice sentence: that of the most fundamental reason (the learned gate,
    ``core.gate``, builds its verdicts with this too)."""
    ordered = sorted(reasons, key=_ADVICE_ORDER.index)
    advice = ADVICE[ordered[0]] if ordered else ""
    return QualityReport(status=status, reasons=tuple(ordered), advice=advice,
                         metrics={k: round(float(v), 4) for k, v in metrics.items()})
