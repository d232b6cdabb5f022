"""Regenerates kflow/logo-32x32.png and kflow/logo-64x64.png (stdlib only: zlib + struct).

The logo: a rounded square in Kubeflow-ish blue with a white "k" whose arm ends in an orange
dot (a job running). Shapes are rendered with 4x4 supersampling for smooth edges.
Run: python kernel-spec/make_logos.py
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

BLUE_TOP = (38, 110, 230)
BLUE_BOTTOM = (18, 64, 160)
WHITE = (255, 255, 255)
ORANGE = (255, 153, 0)


def _seg_dist(px: float, py: float, ax: float, ay: float, bx: float, by: float) -> float:
    dx, dy = bx - ax, by - ay
    t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
    return math.hypot(px - (ax + t * dx), py - (ay + t * dy))


def _sample(x: float, y: float) -> tuple[float, float, float, float]:
    """Colour at unit coordinates (0..1), as RGBA floats."""
    # Rounded square background.
    r = 0.2
    cx, cy = min(max(x, r), 1 - r), min(max(y, r), 1 - r)
    if math.hypot(x - cx, y - cy) > r:
        return (0.0, 0.0, 0.0, 0.0)
    col = tuple(BLUE_TOP[i] + (BLUE_BOTTOM[i] - BLUE_TOP[i]) * y for i in range(3))
    w = 0.085
    # "k": stem, upper arm, lower leg.
    if (
        _seg_dist(x, y, 0.32, 0.2, 0.32, 0.8) < w
        or _seg_dist(x, y, 0.34, 0.58, 0.62, 0.36) < w
        or _seg_dist(x, y, 0.44, 0.5, 0.68, 0.8) < w
    ):
        col = WHITE
    if math.hypot(x - 0.72, y - 0.27) < 0.1:
        col = ORANGE
    return (col[0], col[1], col[2], 255.0)


def render(size: int) -> bytes:
    ss = 4
    rows = []
    for py in range(size):
        row = bytearray([0])  # filter type 0
        for px in range(size):
            acc = [0.0, 0.0, 0.0, 0.0]
            for sy in range(ss):
                for sx in range(ss):
                    c = _sample((px + (sx + 0.5) / ss) / size, (py + (sy + 0.5) / ss) / size)
                    a = c[3] / 255.0
                    acc[0] += c[0] * a
                    acc[1] += c[1] * a
                    acc[2] += c[2] * a
                    acc[3] += c[3]
            n = ss * ss
            alpha = acc[3] / n
            if alpha > 0:
                scale = 255.0 / alpha  # un-premultiply
                rgb = [min(255, round(acc[i] / n * scale)) for i in range(3)]
            else:
                rgb = [0, 0, 0]
            row.extend([*rgb, round(alpha)])
        rows.append(bytes(row))
    raw = b"".join(rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


if __name__ == "__main__":
    out = Path(__file__).resolve().parent / "kflow"
    for size in (32, 64):
        (out / f"logo-{size}x{size}.png").write_bytes(render(size))
        print(f"wrote {out / f'logo-{size}x{size}.png'}")
