"""Line charts of a run's metrics.jsonl drawn with Pillow (no plotting library needed), for
the studio and the static report."""

from __future__ import annotations

import io
import math
from typing import Any

from PIL import Image, ImageDraw, ImageFont

COLOURS = [(52, 101, 164), (245, 121, 0), (78, 154, 6), (204, 0, 0), (117, 80, 123)]
CHARTS = {
    "losses": ("loss_d", "loss_g"),
    "D scores": ("d_real", "d_fake", "score_real", "score_fake"),
    "metrics": ("fid", "kid", "fd_dinov2", "precision", "recall", "ada_p"),
}


def series(records: list[dict[str, Any]], key: str) -> list[tuple[float, float]]:
    """(step, value) of every record that has a finite number under `key`."""
    points = []
    for record in records:
        value, step = record.get(key), record.get("step")
        numbers = isinstance(value, int | float) and isinstance(step, int | float)
        if numbers and math.isfinite(value):
            points.append((float(step), float(value)))
    return points


def line_chart(
    lines: dict[str, list[tuple[float, float]]], title: str, size: tuple[int, int] = (560, 300)
) -> Image.Image:
    """A chart of several (x, y) series with a legend; an empty chart says 'no data'."""
    width, height = size
    left, right, top, bottom = 60, 12, 28, 30
    canvas = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    draw.text((left, 6), title, fill="black", font=font)
    points = [p for line in lines.values() for p in line]
    if not points:
        draw.text((width // 2, height // 2), "no data", fill="grey", font=font, anchor="mm")
        return canvas
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
    plot_w, plot_h = width - left - right, height - top - bottom

    def at(x: float, y: float) -> tuple[float, float]:
        return left + (x - x0) / (x1 - x0) * plot_w, top + (1 - (y - y0) / (y1 - y0)) * plot_h

    draw.line([(left, top), (left, top + plot_h), (left + plot_w, top + plot_h)], fill="black")
    for value in (y0, (y0 + y1) / 2, y1):
        draw.text((left - 4, at(x0, value)[1]), f"{value:.3g}", fill="black", font=font,
                  anchor="rm")  # fmt: skip
    for value in (x0, x1):
        draw.text((at(value, y0)[0], top + plot_h + 4), f"{value:.0f}", fill="black", font=font,
                  anchor="mt")  # fmt: skip
    for i, (name, line) in enumerate(lines.items()):
        colour = COLOURS[i % len(COLOURS)]
        if len(line) == 1:
            x, y = at(*line[0])
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        elif line:
            draw.line([at(x, y) for x, y in line], fill=colour, width=2)
        lx = left + 8 + i * 100
        draw.rectangle([lx, top + 2, lx + 8, top + 10], fill=colour)
        draw.text((lx + 12, top + 6), name, fill="black", font=font, anchor="lm")
    return canvas


def metric_charts(records: list[dict[str, Any]]) -> dict[str, Image.Image]:
    """{title: chart} for the losses, the D scores and the metrics that the records hold."""
    charts = {}
    for title, keys in CHARTS.items():
        lines = {key: series(records, key) for key in keys}
        lines = {key: line for key, line in lines.items() if line}
        if lines:
            charts[title] = line_chart(lines, title)
    return charts


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
