#!/usr/bin/env python3
"""Draws Bitween's app and tray icons into icons/ (PNG, antialiased), with
no dependency beyond Python itself: three friends (dots) joined by links.
Run it again after changing the drawing; the PNGs are committed."""
import math, os, struct, zlib

def png(path, w, h, px):
    raw = b"".join(b"\0" + bytes(px[y * w * 4:(y + 1) * w * 4]) for y in range(h))
    def chunk(t, d):
        c = struct.pack(">I", len(d)) + t + d
        return c + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)

def seg_dist(px, py, ax, ay, bx, by):
    dx, dy = bx - ax, by - ay
    t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
    return math.hypot(px - ax - t * dx, py - ay - t * dy)

def rounded_box(px, py, half, r):
    qx, qy = abs(px) - half + r, abs(py) - half + r
    return math.hypot(max(qx, 0), max(qy, 0)) + min(max(qx, qy), 0) - r

NODES = [(0.30, 0.34), (0.70, 0.34), (0.50, 0.70)]

def glyph(u, v, scale):
    """Signed distance (in units of the icon size) to the glyph."""
    d = 1e9
    for (ax, ay), (bx, by) in [(NODES[0], NODES[1]), (NODES[1], NODES[2]), (NODES[2], NODES[0])]:
        d = min(d, seg_dist(u, v, ax, ay, bx, by) - 0.035 * scale)
    for (nx, ny) in NODES:
        d = min(d, math.hypot(u - nx, v - ny) - 0.11 * scale)
    return d

def mix(a, b, t):
    return tuple(a[i] + (b[i] - a[i]) * t for i in range(len(a)))

def draw(size, background, fg, badge=None, ss=4):
    px = bytearray(size * size * 4)
    for y in range(size):
        for x in range(size):
            acc = [0.0, 0.0, 0.0, 0.0]
            for sy in range(ss):
                for sx in range(ss):
                    u = (x + (sx + 0.5) / ss) / size
                    v = (y + (sy + 0.5) / ss) / size
                    col = (0, 0, 0, 0)
                    if background is not None:
                        if rounded_box(u - 0.5, v - 0.5, 0.47, 0.16) < 0:
                            top, bottom = background
                            col = mix(top, bottom, v) + (255,)
                    if glyph(u, v, 1.0 if background else 1.25) < 0:
                        col = fg + (255,)
                    if badge is not None and math.hypot(u - 0.78, v - 0.78) < 0.2:
                        col = badge + (255,)
                        # a white down arrow in the badge
                        if seg_dist(u, v, 0.78, 0.68, 0.78, 0.86) < 0.03 or \
                           seg_dist(u, v, 0.78, 0.87, 0.71, 0.80) < 0.03 or \
                           seg_dist(u, v, 0.78, 0.87, 0.85, 0.80) < 0.03:
                            col = (255, 255, 255, 255)
                    a = col[3] / 255
                    for i in range(3):
                        acc[i] += col[i] * a
                    acc[3] += a
            n = ss * ss
            alpha = acc[3] / n
            o = (y * size + x) * 4
            if alpha > 0:
                px[o:o + 3] = bytes(int(round(acc[i] / acc[3])) for i in range(3))
            px[o + 3] = int(round(alpha * 255))
    return px

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "icons")
os.makedirs(here, exist_ok=True)
app_bg = ((37, 99, 235), (14, 165, 233))
for s in (32, 128, 256, 512):
    name = "icon.png" if s == 512 else f"{s}x{s}.png"
    png(os.path.join(here, name), s, s, draw(s, app_bg, (255, 255, 255), ss=3 if s > 128 else 4))
png(os.path.join(here, "128x128@2x.png"), 256, 256, draw(256, app_bg, (255, 255, 255), ss=3))
png(os.path.join(here, "tray-offline.png"), 64, 64, draw(64, None, (140, 140, 140)))
png(os.path.join(here, "tray-online.png"), 64, 64, draw(64, None, (22, 163, 74)))
png(os.path.join(here, "tray-busy.png"), 64, 64, draw(64, None, (22, 163, 74), badge=(37, 99, 235)))
print("icons written to", os.path.normpath(here))
