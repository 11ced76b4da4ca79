"""Render resources/icons/aimedx.svg to aimedx.png (256 px); run again after editing the SVG."""

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ICONS = Path(__file__).resolve().parent.parent / "resources" / "icons"


def render(size: int = 256) -> Path:
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    QSvgRenderer(str(ICONS / "aimedx.svg")).render(painter)
    painter.end()
    target = ICONS / "aimedx.png"
    if not image.save(str(target)):
        raise SystemExit(f"could not write {target}")
    return target


if __name__ == "__main__":
    app = QGuiApplication(sys.argv[:1])
    print(render())
