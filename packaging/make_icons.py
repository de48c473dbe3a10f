"""Render resources/icons/app.svg into the icon files the bundles need:
eyescreen.ico (Windows programs), eyescreen.icns (macOS app) and
eyescreen-256.png (Linux menus that do not take SVG). Run after changing the
SVG: ``QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/make_icons.py``."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QBuffer, QIODevice, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "packaging" / "icons"


def render(size: int) -> Image.Image:
    """The app icon as a square RGBA image of ``size`` pixels."""
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    QSvgRenderer(str(ROOT / "resources" / "icons" / "app.svg")).render(painter)
    painter.end()
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return Image.open(io.BytesIO(bytes(buffer.data()))).convert("RGBA")


def main() -> None:
    QGuiApplication([])
    OUT.mkdir(parents=True, exist_ok=True)
    big = render(1024)
    big.save(OUT / "eyescreen.ico", sizes=[(s, s) for s in (16, 24, 32, 48, 64, 128, 256)])
    big.save(OUT / "eyescreen.icns")
    render(256).save(OUT / "eyescreen-256.png")
    print("wrote", ", ".join(sorted(p.name for p in OUT.iterdir())))


if __name__ == "__main__":
    main()
