"""Real sample files, made by the libraries that make them in the wild."""

from __future__ import annotations

import io
import json

from fpdf import FPDF
from PIL import Image


def pdf(pages: list[str], title: str = "Quarterly report") -> bytes:
    doc = FPDF()
    doc.set_title(title)
    doc.set_font("helvetica", size=14)
    for text in pages:
        doc.add_page()
        doc.multi_cell(0, 10, text)
    return bytes(doc.output())


def png(width: int = 640, height: int = 480) -> bytes:
    image = Image.new("RGB", (width, height))
    for x in range(0, width, 8):
        for y in range(0, height, 8):
            image.putpixel((x, y), (x % 256, y % 256, 128))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    out = io.BytesIO()
    image.save(out, format="PNG", exif=exif)
    return out.getvalue()


def csv_text() -> bytes:
    rows = ["id,name,price,in_stock,added"]
    rows += [
        f"{i},item {i},{i * 1.5:.2f},{'true' if i % 2 else 'false'},2026-11-{i % 28 + 1:02d}"
        for i in range(1, 51)
    ]
    return ("\n".join(rows) + "\n").encode()


def json_doc() -> bytes:
    return json.dumps({"name": "conveyor", "tags": ["a", "b"], "count": 3}).encode()


def markdown() -> bytes:
    return "# Title\n\nSome *text* with ünïcödé.\n\n## Part two\n\n- a\n- b\n".encode()
