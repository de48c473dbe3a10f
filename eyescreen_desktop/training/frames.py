"""Synthetic camera frame formats, quality degradations and the ``other`` pictures.

Every clinic has its own camera, so the gate is trained and tested on the
frames cameras deliver, made from real fundus photographs by transformation:

* :data:`FRAME_FORMATS`: full circle on black, clipped circle filling the
  width, rectangular crop inside the retina, notched masks, colour casts
  (yellow, green, red-dominant), burnt-in timestamps and text, vignetting; any
  of them at 640-4000 px (:func:`camera_frame` composes them).
* :data:`DEGRADATIONS`: what makes a fundus photograph ungradable (blur,
  under/over-exposure, cataract haze, lashes or eyelid shadow, an off-centre
  camera, a small pupil), each with the reason the gate should give.
* :func:`other_pictures`: pictures that are not eyes at all, built only from
  what installed packages ship (scikit-image and matplotlib sample images,
  the app's own screenshots) and from what is rendered here (documents,
  charts, screens, textures, drawn faces, round objects on black, clock
  faces, discs cut from the shipped pictures, non-retina crops of fundus
  frames). Nothing is downloaded.

All functions take a ``numpy.random.Generator`` so ``eyescreen train-gate``
reproduces the same pictures. Qt-free; no TensorFlow.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..core.fundus import FieldOfView, find_field_of_view

Frame = Callable[[np.ndarray, FieldOfView, np.random.Generator], np.ndarray]

# ------------------------------------------------------------------ geometry


def retina_square(rgb: np.ndarray, fov: FieldOfView, side: int = 1024) -> np.ndarray:
    """The field of view's circle in a black square of ``side`` px (parts of
    the circle outside the photograph stay black): the camera-independent
    starting point of every frame format."""
    x0, y0, x1, y1 = fov.bbox
    d = max(x1 - x0, y1 - y0, 1)
    pad = max(0, -x0, -y0, x1 - rgb.shape[1], y1 - rgb.shape[0])
    padded = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    crop = padded[y0 + pad:y0 + pad + d, x0 + pad:x0 + pad + d]
    sq = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
    return sq * _disc(side, side, side / 2, side / 2, 0.985 * side / 2)[..., None]


def _disc(h: int, w: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.ogrid[:h, :w]
    return (((xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2) <= r * r).astype(np.uint8)


def full_circle(rgb: np.ndarray, fov: FieldOfView, rng: np.random.Generator) -> np.ndarray:
    """The whole circle on a black frame, wider than tall (4:3 to 3:2)."""
    sq = retina_square(rgb, fov)
    w = int(sq.shape[1] * rng.uniform(1.3, 1.6))
    h = int(sq.shape[0] * rng.uniform(1.02, 1.12))
    return _place(sq, h, w)


def clipped_width(rgb: np.ndarray, fov: FieldOfView, rng: np.random.Generator) -> np.ndarray:
    """The circle fills the frame's width and is cut at top and bottom (many cameras)."""
    sq = retina_square(rgb, fov)
    side = sq.shape[0]
    h = int(side * rng.uniform(0.62, 0.8))
    y0 = (side - h) // 2
    margin = int(side * rng.uniform(0.0, 0.08))
    out = sq[y0:y0 + h]
    return cv2.copyMakeBorder(out, 0, 0, margin, margin, cv2.BORDER_CONSTANT, value=0)


def rectangular(rgb: np.ndarray, fov: FieldOfView, rng: np.random.Generator) -> np.ndarray:
    """A rectangle cut from inside the retina: no black surround at all."""
    sq = retina_square(rgb, fov)
    side = sq.shape[0]
    aspect = rng.uniform(1.0, 1.5)
    half_diag = 0.96 * side / 2
    h = int(2 * half_diag / np.hypot(aspect, 1.0))
    w = int(h * aspect)
    y0, x0 = (side - h) // 2, (side - w) // 2
    return np.ascontiguousarray(sq[y0:y0 + h, x0:x0 + w])


def notched(rgb: np.ndarray, fov: FieldOfView, rng: np.random.Generator) -> np.ndarray:
    """A full circle whose mask has a notch or a flat tab, as some cameras print
    to show orientation."""
    out = full_circle(rgb, fov, rng).copy()
    h, w = out.shape[:2]
    side = min(h, w) * 0.93
    cx, cy, r = w / 2, h / 2, side / 2
    angle = rng.choice([0.0, np.pi / 2, np.pi, 1.5 * np.pi]) + rng.uniform(-0.3, 0.3)
    size = r * rng.uniform(0.08, 0.16)
    px, py = cx + r * np.cos(angle), cy + r * np.sin(angle)
    if rng.random() < 0.5:
        pts = np.array([[px + size * np.cos(angle + a), py + size * np.sin(angle + a)]
                        for a in (np.pi / 2, -np.pi / 2, np.pi)], np.int32)
        cv2.fillConvexPoly(out, pts, (0, 0, 0))
    else:   # a flat cut: a chord across the circle's edge
        cv2.circle(out, (int(cx + (r + size * 2.2) * np.cos(angle)), int(cy + (r + size * 2.2) * np.sin(angle))),
                   int(size * 3), (0, 0, 0), -1)
    return out


def _place(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """``img`` centred on a black canvas of h x w (cropped where it is larger)."""
    out = np.zeros((h, w, 3), np.uint8)
    ih, iw = img.shape[:2]
    y, x = (h - ih) // 2, (w - iw) // 2
    sy, sx = max(0, -y), max(0, -x)
    dy, dx = max(0, y), max(0, x)
    ch, cw = min(ih - sy, h - dy), min(iw - sx, w - dx)
    out[dy:dy + ch, dx:dx + cw] = img[sy:sy + ch, sx:sx + cw]
    return out


# ------------------------------------------------------------------ colour and overlays


def colour_cast(img: np.ndarray, kind: str, strength: float = 1.0) -> np.ndarray:
    """Yellow (R and G up, B down), green (G dominant) or red-dominant cast."""
    gains = {"yellow": (1.15, 1.35, 0.45), "green": (0.7, 1.45, 0.8), "red": (1.35, 0.55, 0.45)}[kind]
    g = 1.0 + (np.array(gains) - 1.0) * strength
    return np.clip(img.astype(np.float32) * g, 0, 255).astype(np.uint8)


def burnt_in_text(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A date and time, a patient code and a camera name printed into the picture."""
    out = img.copy()
    h, w = out.shape[:2]
    scale = max(0.4, w / 1400)
    colour = [(255, 255, 255), (255, 255, 0), (0, 255, 0), (200, 200, 200)][rng.integers(4)]
    when = dt.datetime(2024, 1, 1) + dt.timedelta(minutes=int(rng.integers(0, 500000)))
    lines = [when.strftime("%Y-%m-%d %H:%M:%S"), f"ID {rng.integers(10000, 99999)}  {'OD' if rng.random() < .5 else 'OS'}",
             ["TRC-NW8", "CR-2 AF", "VISUCAM", "Kowa VX-10", "DRS"][rng.integers(5)]]
    thick = max(1, int(2 * scale))
    corners = [(int(0.02 * w), int(0.06 * h)), (int(0.02 * w), int(0.95 * h)), (int(0.70 * w), int(0.06 * h)),
               (int(0.65 * w), int(0.95 * h))]
    for i, line in enumerate(lines[: 1 + rng.integers(3)]):
        x, y = corners[(i + rng.integers(4)) % 4]
        cv2.putText(out, line, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick, cv2.LINE_AA)
    return out


def vignetting(img: np.ndarray, strength: float) -> np.ndarray:
    """Brightness falling off towards the edges (strength 0-1 at the corners)."""
    h, w = img.shape[:2]
    yy, xx = np.ogrid[:h, :w]
    r = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2)) / np.sqrt(2)
    gain = 1.0 - strength * np.clip(r, 0, 1) ** 2
    return (img.astype(np.float32) * gain[..., None]).astype(np.uint8)


def resize_long(img: np.ndarray, side: int) -> np.ndarray:
    """Scale so the long side is ``side`` px (up or down)."""
    h, w = img.shape[:2]
    s = side / max(h, w)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    return cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=interp)


def _cast(kind: str) -> Frame:
    return lambda rgb, fov, rng: colour_cast(full_circle(rgb, fov, rng), kind, rng.uniform(0.7, 1.0))


FRAME_FORMATS: dict[str, Frame] = {
    "full_circle": full_circle,
    "clipped_width": clipped_width,
    "rectangular": rectangular,
    "notched": notched,
    "cast_yellow": _cast("yellow"),
    "cast_green": _cast("green"),
    "cast_red": _cast("red"),
    "text": lambda rgb, fov, rng: burnt_in_text(clipped_width(rgb, fov, rng), rng),
    "vignetting": lambda rgb, fov, rng: vignetting(full_circle(rgb, fov, rng), rng.uniform(0.4, 0.7)),
}


def camera_frame(rgb: np.ndarray, fov: FieldOfView, rng: np.random.Generator,
                 fmt: str | None = None, side: int | None = None) -> tuple[np.ndarray, str]:
    """One camera's frame of a fundus photograph: a geometry format, sometimes a
    colour cast, text and vignetting on top, at ``side`` px (random 640-4000 when
    None). Returns the picture and the name of its main format."""
    fmt = fmt or str(rng.choice(list(FRAME_FORMATS)))
    img = FRAME_FORMATS[fmt](rgb, fov, rng)
    if fmt in ("full_circle", "clipped_width", "rectangular", "notched") and rng.random() < 0.3:
        img = colour_cast(img, str(rng.choice(["yellow", "green", "red"])), rng.uniform(0.3, 0.8))
    if fmt != "text" and rng.random() < 0.25:
        img = burnt_in_text(img, rng)
    side = side or int(rng.integers(640, 4001))
    return resize_long(img, side), fmt


# ------------------------------------------------------------------ degradations (quality)


def blur(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Out of focus: a Gaussian blur of 0.6-1.5% of the frame's width."""
    sigma = img.shape[1] * rng.uniform(0.006, 0.015)
    return cv2.GaussianBlur(img, (0, 0), sigma)


def underexposed(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (img.astype(np.float32) * rng.uniform(0.12, 0.3)).astype(np.uint8)


def overexposed(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    lit = img.max(axis=2, keepdims=True) > 15
    out = np.clip(img.astype(np.float32) * rng.uniform(2.5, 4.0) + 40, 0, 255).astype(np.uint8)
    return np.where(lit, out, img)


def haze(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cataract or a dirty lens: a milky veil over a softened picture."""
    lit = img.max(axis=2, keepdims=True) > 15
    soft = cv2.GaussianBlur(img, (0, 0), img.shape[1] * 0.004).astype(np.float32)
    veil = np.array([200, 190, 170], np.float32) * rng.uniform(0.8, 1.0)
    a = rng.uniform(0.45, 0.7)
    out = ((1 - a) * soft + a * veil).astype(np.uint8)
    return np.where(lit, out, img)


def eyelid_shadow(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An eyelid or lashes over the upper part: a dark band with lash strands."""
    h, w = img.shape[:2]
    shade = np.ones((h, w), np.float32)
    edge = int(h * rng.uniform(0.3, 0.5))
    shade[:edge] = rng.uniform(0.05, 0.2)
    for _ in range(int(rng.integers(15, 40))):
        x = int(rng.integers(0, w))
        cv2.line(shade, (x, edge), (x + int(rng.integers(-w // 10, w // 10)), edge + int(rng.integers(h // 10, h // 4))),
                 0.1, max(2, w // 200))
    shade = cv2.GaussianBlur(shade, (0, 0), max(2.0, w / 150))
    return (img.astype(np.float32) * shade[..., None]).astype(np.uint8)


def off_centre(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Camera not aligned with the pupil: a dark crescent over one side of the field."""
    h, w = img.shape[:2]
    angle = rng.uniform(0, 2 * np.pi)
    d = rng.uniform(0.45, 0.7) * min(h, w)
    cx, cy = w / 2 + d * np.cos(angle), h / 2 + d * np.sin(angle)
    yy, xx = np.ogrid[:h, :w]
    dist = np.hypot(xx - cx, yy - cy) / (0.75 * min(h, w))
    shade = np.clip(dist - 0.2, 0.0, 1.0) ** 1.5
    shade = 1 - np.clip(shade * 1.6, 0, 0.95)
    return (img.astype(np.float32) * shade[..., None]).astype(np.uint8)


def small_pupil(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An undilated pupil: only the middle of the field is lit, the rim is dark."""
    h, w = img.shape[:2]
    yy, xx = np.ogrid[:h, :w]
    r = np.hypot(xx - w / 2, yy - h / 2) / (0.5 * min(h, w))
    keep = rng.uniform(0.3, 0.5)
    gain = np.clip(1 - (r - keep) / 0.25, 0.03, 1.0)
    return (img.astype(np.float32) * gain[..., None] * rng.uniform(0.6, 0.9)).astype(np.uint8)


# degradation -> the reason the gate should give for it
DEGRADATIONS: dict[str, tuple[Callable[[np.ndarray, np.random.Generator], np.ndarray], str]] = {
    "blur": (blur, "blurred"),
    "haze": (haze, "blurred"),
    "underexposed": (underexposed, "dark"),
    "overexposed": (overexposed, "overexposed"),
    "eyelid_shadow": (eyelid_shadow, "uneven_illumination"),
    "off_centre": (off_centre, "uneven_illumination"),
    "small_pupil": (small_pupil, "uneven_illumination"),
}


# ------------------------------------------------------------------ other pictures


def package_pictures() -> list[tuple[str, np.ndarray]]:
    """Non-eye sample pictures shipped by scikit-image and matplotlib (offline),
    as RGB uint8. ``skimage.data.retina`` and ``microaneurysms`` are fundus
    pictures and are left out here (the tests use ``retina`` as a fundus photo)."""
    out: list[tuple[str, np.ndarray]] = []
    try:
        import skimage.data as sk
    except ImportError:  # scikit-image comes with the train extra; without it the set is smaller
        sk = None
    names = ["astronaut", "camera", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
             "moon", "page", "text", "checkerboard", "clock", "coins", "horse", "brick", "grass", "gravel",
             "colorwheel", "logo", "cell", "cat", "binary_blobs", "shepp_logan_phantom"]
    for name in names if sk else []:
        try:
            out.append((f"skimage-{name}", as_rgb(getattr(sk, name)())))
        except Exception:  # noqa: BLE001 - a sample missing from this version is just not used
            continue
    if sk is not None:
        try:
            faces = sk.lfw_subset()
            for i in range(0, len(faces), 10):
                out.append((f"skimage-face-{i}", as_rgb(faces[i])))
        except Exception:  # noqa: BLE001 - the sample faces are optional: without them the set is smaller
            pass
    import matplotlib
    sample = Path(matplotlib.get_data_path()) / "sample_data"
    for name in ("grace_hopper.jpg", "logo2.png", "Minduka_Present_Blue_Pack.png"):
        img = cv2.imread(str(sample / name), cv2.IMREAD_COLOR)
        if img is not None:
            out.append((f"matplotlib-{name}", cv2.cvtColor(img, cv2.COLOR_BGR2RGB)))
    return out


def app_screenshots(repo: Path) -> list[tuple[str, np.ndarray]]:
    """The app's own window screenshots and sample slips (docs/images)."""
    out = []
    for p in sorted((repo / "docs" / "images").glob("*.png")):
        if p.name.startswith("gate-"):
            continue   # the gate's own example sheet shows fundus photographs
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is not None:
            out.append((f"screenshot-{p.stem}", cv2.cvtColor(img, cv2.COLOR_BGR2RGB)))
    return out


def as_rgb(img: np.ndarray) -> np.ndarray:
    """Any sample picture (grey, bool, float, RGBA) as RGB uint8."""
    a = np.asarray(img)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        a = a.astype(np.float64)
        a = (255 * (a - a.min()) / max(a.max() - a.min(), 1e-9)).astype(np.uint8)
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    if a.shape[2] == 4:
        a = a[:, :, :3]
    return np.ascontiguousarray(a)


def document(rng: np.random.Generator) -> np.ndarray:
    """A page of text, maybe with a table: a scanned letter or a referral form."""
    h, w = int(rng.integers(700, 1200)), int(rng.integers(500, 900))
    paper = np.array([255, 255, 255]) - rng.integers(0, 30, 3)
    img = np.ones((h, w, 3), np.uint8) * paper.astype(np.uint8)
    y = 40
    words = ["Patient", "referral", "diabetes", "clinic", "eye", "retina", "date", "signed", "result", "grade", "NHS"]
    while y < h - 30:
        line = " ".join(rng.choice(words, int(rng.integers(2, 8))))
        cv2.putText(img, line, (30, y), cv2.FONT_HERSHEY_SIMPLEX, rng.uniform(0.5, 0.9), (20, 20, 20), 1, cv2.LINE_AA)
        y += int(rng.integers(22, 40))
        if rng.random() < 0.05:
            cv2.rectangle(img, (30, y), (w - 30, y + 80), (0, 0, 0), 1)
            y += 100
    return img


def chart(rng: np.random.Generator) -> np.ndarray:
    """A matplotlib chart (lines, bars or a scatter) rendered to pixels."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure(figsize=(rng.uniform(4, 8), rng.uniform(3, 6)), dpi=100)
    if rng.random() < 0.3:
        fig.patch.set_facecolor("black")
    ax = fig.add_subplot()
    kind = rng.integers(4)
    x = np.arange(20)
    if kind == 0:
        for _ in range(3):
            ax.plot(x, np.cumsum(rng.normal(size=20)))
    elif kind == 1:
        ax.bar(x[:8], rng.uniform(1, 10, 8), color=rng.uniform(0, 1, 3))
    elif kind == 2:
        ax.scatter(rng.normal(size=100), rng.normal(size=100), c=rng.uniform(size=100))
    else:
        ax.pie(rng.uniform(1, 5, 4))
    ax.set_title("Screening results")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def screen(rng: np.random.Generator) -> np.ndarray:
    """A drawn application window: title bar, side list, panels, buttons, text."""
    h, w = int(rng.integers(500, 900)), int(rng.integers(700, 1400))
    dark = rng.random() < 0.4
    bg = (40, 42, 48) if dark else (236, 236, 238)
    fg = (220, 220, 220) if dark else (30, 30, 30)
    img = np.full((h, w, 3), bg, np.uint8)
    cv2.rectangle(img, (0, 0), (w, 30), (60, 90, 160) if rng.random() < .5 else (200, 200, 205), -1)
    cv2.rectangle(img, (0, 30), (int(w * 0.22), h), tuple(int(c * 0.9) for c in bg), -1)
    for i in range(int(rng.integers(5, 15))):
        cv2.putText(img, f"Item {i + 1}", (10, 60 + 28 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5, fg, 1, cv2.LINE_AA)
    for _ in range(int(rng.integers(3, 9))):
        x0, y0 = int(rng.integers(int(w * 0.25), w - 120)), int(rng.integers(40, h - 60))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        cv2.rectangle(img, (x0, y0), (x0 + int(rng.integers(60, 300)), y0 + int(rng.integers(20, 150))), colour,
                      -1 if rng.random() < .5 else 1)
        cv2.putText(img, "OK", (x0 + 5, y0 + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, fg, 1, cv2.LINE_AA)
    return img


def texture(rng: np.random.Generator) -> np.ndarray:
    """Smoothed coloured noise at a random scale: skin, walls, sand, clouds."""
    side = int(rng.integers(300, 800))
    small = rng.integers(0, 255, (int(rng.integers(4, 64)),) * 2 + (3,)).astype(np.uint8)
    img = cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC)
    img = (img.astype(np.float32) * rng.uniform(0.3, 1.0, 3) + rng.uniform(0, 80, 3))
    img += rng.normal(0, rng.uniform(0, 20), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def drawn_face(rng: np.random.Generator) -> np.ndarray:
    """A simple drawn face (skin-coloured oval, eyes, mouth) on a background:
    a selfie taken by mistake."""
    h, w = int(rng.integers(400, 800)), int(rng.integers(400, 800))
    img = np.full((h, w, 3), rng.integers(0, 255, 3), np.uint8)
    skin = (int(rng.integers(150, 250)), int(rng.integers(100, 190)), int(rng.integers(70, 160)))
    cx, cy, ax, ay = w // 2, h // 2, int(w * .3), int(h * .4)
    cv2.ellipse(img, (cx, cy), (ax, ay), 0, 0, 360, skin, -1)
    for dx in (-1, 1):
        ex = cx + dx * ax // 2
        cv2.ellipse(img, (ex, cy - ay // 5), (ax // 5, ay // 10), 0, 0, 360, (250, 250, 250), -1)
        cv2.circle(img, (ex, cy - ay // 5), ay // 14, (int(rng.integers(30, 120)), 60, 30), -1)
        cv2.circle(img, (ex, cy - ay // 5), ay // 30, (10, 10, 10), -1)
    cv2.ellipse(img, (cx, cy + ay // 2), (ax // 3, ay // 8), 0, 0, 180, (150, 40, 50), 4)
    cv2.ellipse(img, (cx, cy - ay), (ax, ay // 2), 0, 180, 360, tuple(int(c) for c in rng.integers(0, 120, 3)), -1)
    return cv2.GaussianBlur(img, (0, 0), 1.5)


def round_object(rng: np.random.Generator) -> np.ndarray:
    """A lit disc on black that is not a retina (a ball, a lamp, the moon-like
    grey disc): no vessels, no optic disc. The hardest negatives."""
    side = int(rng.integers(400, 900))
    img = np.zeros((side, int(side * rng.uniform(1.0, 1.5)), 3), np.uint8)
    h, w = img.shape[:2]
    colour = rng.integers(40, 255, 3)
    r = int(min(h, w) * rng.uniform(0.3, 0.48))
    yy, xx = np.ogrid[:h, :w]
    d = np.hypot(xx - w / 2, yy - h / 2) / r
    shade = np.clip(1.1 - 0.6 * d ** 2, 0, 1) * (d <= 1)
    img = (shade[..., None] * colour).astype(np.float32)
    if rng.random() < 0.5:
        img += cv2.resize(texture(rng), (w, h)).astype(np.float32) * 0.3 * shade[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def clock_face(rng: np.random.Generator) -> np.ndarray:
    """A dial: a pale round face with a rim, ticks, numbers and hands, lit on a
    plain or dark ground, often blurred or cropped (clocks, gauges, watches:
    round, lit, line-drawn, the shape of a fundus frame without a retina)."""
    side = int(rng.integers(300, 900))
    h, w = side, int(side * rng.uniform(1.0, 1.4))
    ground = rng.integers(0, 120, 3) if rng.random() < 0.6 else rng.integers(120, 255, 3)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = ground
    cx, cy = w / 2 + rng.uniform(-0.1, 0.1) * w, h / 2 + rng.uniform(-0.1, 0.1) * h
    r = min(h, w) * rng.uniform(0.3, 0.5)
    face = rng.uniform(150, 255) * rng.uniform(0.75, 1.0, 3)
    rim = rng.uniform(0, 120, 3)
    ci = (int(cx), int(cy))
    cv2.circle(img, ci, int(r), tuple(float(c) for c in rim), -1, cv2.LINE_AA)
    cv2.circle(img, ci, int(r * rng.uniform(0.85, 0.95)), tuple(float(c) for c in face), -1, cv2.LINE_AA)
    ink = tuple(float(c) for c in rng.uniform(0, 80, 3))
    for k in range(60 if rng.random() < 0.5 else 12):
        a = 2 * np.pi * k / (60 if k >= 12 else 12)
        long = 0.12 if k % 5 == 0 else 0.05
        p0 = (int(cx + 0.8 * r * np.cos(a)), int(cy + 0.8 * r * np.sin(a)))
        p1 = (int(cx + (0.8 - long) * r * np.cos(a)), int(cy + (0.8 - long) * r * np.sin(a)))
        cv2.line(img, p0, p1, ink, max(1, int(r / 60)), cv2.LINE_AA)
    if rng.random() < 0.6:
        for k in range(1, 13):
            a = 2 * np.pi * k / 12 - np.pi / 2
            cv2.putText(img, str(k), (int(cx + 0.6 * r * np.cos(a)) - int(r / 20), int(cy + 0.6 * r * np.sin(a)) + int(r / 20)),
                        cv2.FONT_HERSHEY_SIMPLEX, r / 250, ink, max(1, int(r / 80)), cv2.LINE_AA)
    for length, width in ((0.5, 0.04), (0.75, 0.025), (0.8, 0.008)):
        a = rng.uniform(0, 2 * np.pi)
        cv2.line(img, ci, (int(cx + length * r * np.cos(a)), int(cy + length * r * np.sin(a))), ink,
                 max(1, int(width * r)), cv2.LINE_AA)
    yy, xx = np.ogrid[:h, :w]
    img = img.astype(np.float32) * (1 - rng.uniform(0, 0.5) * np.clip(np.hypot(xx - cx, yy - cy) / r, 0, 1.5) ** 2 / 2.25)[..., None]
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), side * rng.uniform(0.002, 0.01))
    out = np.clip(img, 0, 255).astype(np.uint8)
    return jitter(out, rng) if rng.random() < 0.5 else out


def round_crop(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A disc cut from a picture and lit on a dark or plain ground (a coin, a
    lamp, a plate, a porthole): round and textured, but no retina."""
    h, w = img.shape[:2]
    s = int(min(h, w) * rng.uniform(0.4, 1.0))
    y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
    side = int(rng.integers(256, 900))
    sq = cv2.resize(np.ascontiguousarray(img[y:y + s, x:x + s]), (side, side), interpolation=cv2.INTER_AREA)
    cw = int(side * rng.uniform(1.0, 1.5))
    canvas = np.zeros((side, cw, 3), np.float32)
    canvas[:] = rng.integers(0, 40, 3) if rng.random() < 0.7 else rng.integers(40, 255, 3)
    r = side * rng.uniform(0.38, 0.5)
    disc = _disc(side, side, side / 2, side / 2, r)[..., None].astype(np.float32)
    yy, xx = np.ogrid[:side, :side]
    fall = 1 - rng.uniform(0, 0.6) * np.clip(np.hypot(xx - side / 2, yy - side / 2) / r, 0, 1)[..., None] ** 2
    x0 = (cw - side) // 2
    canvas[:, x0:x0 + side] = canvas[:, x0:x0 + side] * (1 - disc) + sq.astype(np.float32) * fall * disc
    canvas = canvas * rng.uniform(0.6, 1.3, 3)
    if rng.random() < 0.4:
        canvas = cv2.GaussianBlur(canvas, (0, 0), side * rng.uniform(0.003, 0.015))
    return np.clip(canvas, 0, 255).astype(np.uint8)


def surround_crop(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A crop of a fundus frame's black surround (with any printed text): not a retina."""
    h, w = frame.shape[:2]
    fov = find_field_of_view(frame)
    if fov is None:
        return None
    lit = fov.full_mask()
    for _ in range(10):
        ch, cw = int(h * rng.uniform(0.15, 0.3)), int(w * rng.uniform(0.15, 0.3))
        y, x = int(rng.integers(0, h - ch)), int(rng.integers(0, w - cw))
        if lit[y:y + ch, x:x + cw].mean() < 0.05:
            return frame[y:y + ch, x:x + cw].copy()
    return None


def jitter(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random crop, flip, rotation and colour change of a picture (so a few
    dozen shipped pictures give many different ones)."""
    h, w = img.shape[:2]
    if rng.random() < 0.7 and min(h, w) > 60:
        s = rng.uniform(0.4, 1.0)
        ch, cw = max(16, int(h * s)), max(16, int(w * s * rng.uniform(0.7, 1.3)))
        ch, cw = min(ch, h), min(cw, w)
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        img = img[y:y + ch, x:x + cw]
    if rng.random() < 0.5:
        img = img[:, ::-1]
    if rng.random() < 0.3:
        img = np.rot90(img, int(rng.integers(1, 4)))
    out = img.astype(np.float32) * rng.uniform(0.6, 1.3, 3) + rng.uniform(-30, 30)
    return resize_long(np.clip(out, 0, 255).astype(np.uint8), int(rng.integers(300, 1200)))


RENDERED: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "document": document, "chart": chart, "screen": screen, "texture": texture,
    "drawn_face": drawn_face, "round_object": round_object, "clock_face": clock_face,
}


_SHIPPED: list[tuple[str, np.ndarray]] | None = None


def shipped_pictures(repo: Path) -> list[tuple[str, np.ndarray]]:
    """Package sample pictures and app screenshots, loaded once per process."""
    global _SHIPPED
    if _SHIPPED is None:
        _SHIPPED = package_pictures() + app_screenshots(repo)
    return _SHIPPED


def other_picture(rng: np.random.Generator, repo: Path, shipped_part: int = 0,
                  fundus_frame: Callable[[], np.ndarray] | None = None) -> tuple[str, np.ndarray]:
    """One picture that is not an eye: (kind, RGB). Half are jittered copies of
    shipped pictures (every second one when ``shipped_part`` is 0, the others
    when 1, so checking uses pictures fitting never saw), the rest rendered; a
    few are crops of a fundus frame's surround (``fundus_frame`` makes one)."""
    shipped = shipped_pictures(repo)[shipped_part::2]
    u = rng.random()
    if u < 0.42 and shipped:
        name, img = shipped[int(rng.integers(len(shipped)))]
        return "-".join(name.split("-")[:2]), jitter(img, rng)
    samples = [img for name, img in shipped if not name.startswith("screenshot")]  # screens show retinas
    if u < 0.5 and samples:
        return "round_crop", round_crop(samples[int(rng.integers(len(samples)))], rng)
    if u < 0.56 and fundus_frame is not None:
        crop = surround_crop(fundus_frame(), rng)
        if crop is not None:
            return "surround_crop", crop
    kind = list(RENDERED)[int(rng.integers(len(RENDERED)))]
    return kind, RENDERED[kind](rng)
