#!/usr/bin/env python3
"""Summarise a distillation demo (python3 standard library only).

Reads the metrics.jsonl of the teacher, the distilled students and the students trained
from scratch, and reports for each student the tokens it needed to reach the teacher's
final validation loss + 10% (the first validation at or under it), the ratio of
distilled to from-scratch tokens, and the final validation losses. Draws every student's
validation loss against tokens in one PNG (distilled: solid, from scratch: light), with
the target as a grey line.

    python3 tools/distill_report.py --teacher=out/t --student=lightning:out/dl:out/sl \
        --student=gla:out/dg:out/sg --mc=out/mc.txt --png=out/curves.png
"""
import argparse
import json
import struct
import zlib


def read_run(out_dir):
    """(val points [(tokens, loss)], tokens per step, teacher_val_loss or None)."""
    steps, vals, teacher = {}, [], None
    with open(f"{out_dir}/metrics.jsonl") as f:
        for line in f:
            r = json.loads(line)
            if "teacher_val_loss" in r:
                teacher = r["teacher_val_loss"]
            elif "val_loss" in r and r["val_loss"] is not None:
                vals.append((r["step"], r["val_loss"]))
            elif "tokens" in r:
                steps[r["step"]] = r["tokens"]
    per_step = steps[max(steps)] / max(steps)
    return [(s * per_step, v) for s, v in vals], per_step, teacher


def tokens_to_reach(points, target):
    for tokens, loss in points:
        if loss <= target:
            return tokens
    return None


# A 3x5 pixel font for the chart's labels: each glyph is five rows of three bits.
FONT = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111",
    "3": "111001111001111", "4": "101101111001001", "5": "111100111001111",
    "6": "111100111101111", "7": "111001010010010", "8": "111101111101111",
    "9": "111101111001111", ".": "000000000000010", "+": "000010111010000",
    "%": "101001010100101", " ": "000000000000000", "K": "101110100110101",
    "M": "101111111101101", "A": "010101111101101", "C": "111100100100111",
    "D": "110101101101110", "E": "111100110100111", "G": "111100101101111",
    "H": "101101111101101", "I": "111010010010111", "L": "100100100100111",
    "N": "111101101101101", "O": "111101101101111", "R": "110101110101101",
    "S": "111100111001111", "T": "111010010010010", "V": "101101101101010",
    ":": "000010000010000", "-": "000000111000000",
}


class Canvas:
    def __init__(self, w, h):
        self.w, self.h = w, h
        self.px = bytearray(b"\xff" * (w * h * 3))

    def dot(self, x, y, rgb, r=1):
        for dy in range(-r + 1, r):
            for dx in range(-r + 1, r):
                xx, yy = int(x) + dx, int(y) + dy
                if 0 <= xx < self.w and 0 <= yy < self.h:
                    i = 3 * (yy * self.w + xx)
                    self.px[i:i + 3] = bytes(rgb)

    def line(self, x0, y0, x1, y1, rgb, r=2, dash=0):
        n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
        for i in range(n + 1):
            if dash and (i // dash) % 2:
                continue
            t = i / n
            self.dot(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t, rgb, r)

    def text(self, x, y, s, rgb=(40, 40, 40), scale=2):
        for ch in s.upper():
            bits = FONT.get(ch, FONT[" "])
            for k, b in enumerate(bits):
                if b == "1":
                    for sy in range(scale):
                        for sx in range(scale):
                            self.dot(x + (k % 3) * scale + sx, y + (k // 3) * scale + sy, rgb)
            x += 4 * scale

    def png(self, path):
        raw = b"".join(b"\x00" + bytes(self.px[3 * y * self.w:3 * (y + 1) * self.w])
                       for y in range(self.h))
        def chunk(kind, data):
            c = struct.pack(">I", len(data)) + kind + data
            return c + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
        with open(path, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n")
            f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0)))
            f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
            f.write(chunk(b"IEND", b""))


def short(tokens):
    return f"{tokens / 1e6:.1f}M" if tokens >= 1e6 else f"{tokens / 1e3:.0f}K"


def draw(curves, target, path):
    """curves: [(label, rgb, light, points)]; one chart of val loss against tokens."""
    c = Canvas(900, 560)
    left, top, right, bottom = 70, 20, 880, 500
    xs = [t for _, _, _, p in curves for t, _ in p]
    ys = [v for _, _, _, p in curves for _, v in p] + [target]
    x_hi = max(xs)
    y_lo, y_hi = min(ys) - 0.05, min(max(ys), target + 1.5)
    def px(t):
        return left + (right - left) * t / x_hi
    def py(v):
        return bottom - (bottom - top) * (min(v, y_hi) - y_lo) / (y_hi - y_lo)
    for k in range(6):  # grid and tick labels
        v = y_lo + (y_hi - y_lo) * k / 5
        c.line(left, py(v), right, py(v), (230, 230, 230), r=1)
        c.text(8, py(v) - 5, f"{v:.2f}")
        t = x_hi * k / 5
        c.line(px(t), top, px(t), bottom, (230, 230, 230), r=1)
        c.text(px(t) - 12, bottom + 10, short(t))
    c.line(left, bottom, right, bottom, (60, 60, 60), r=1)
    c.line(left, top, left, bottom, (60, 60, 60), r=1)
    c.line(left, py(target), right, py(target), (150, 150, 150), r=1, dash=6)
    for label, rgb, light, points in curves:
        color = tuple(int(x + (255 - x) * 0.55) for x in rgb) if light else rgb
        for (t0, v0), (t1, v1) in zip(points, points[1:]):
            c.line(px(t0), py(v0), px(t1), py(v1), color, r=2)
    y = bottom + 32
    x = left
    for label, rgb, light, _ in curves + [("teacher +10%", (150, 150, 150), False, [])]:
        color = tuple(int(x + (255 - x) * 0.55) for x in rgb) if light else rgb
        c.line(x, y + 4, x + 24, y + 4, color, r=2)
        c.text(x + 30, y, label)
        x += 36 + 8 * len(label) + 20
    c.text(right - 150, top + 6, "VAL LOSS - TOKENS")
    c.png(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--teacher", required=True, help="the teacher's out_dir")
    ap.add_argument("--student", action="append", required=True,
                    help="NAME:DISTILLED_DIR:SCRATCH_DIR")
    ap.add_argument("--png", help="write the curves here")
    args = ap.parse_args()
    teacher_points, _, _ = read_run(args.teacher)
    teacher = teacher_points[-1][1]
    target = teacher * 1.1
    print(f"teacher val loss {teacher:.4f}; target (+10%) {target:.4f}")
    print(f"{'student':<12} {'distilled':>12} {'scratch':>12} {'ratio':>7}  final val (distilled / scratch)")
    colors = [(31, 78, 156), (242, 142, 43), (60, 150, 60)]
    curves = []
    for i, spec in enumerate(args.student):
        name, distilled_dir, scratch_dir = spec.split(":")
        d_points, _, _ = read_run(distilled_dir)
        s_points, _, _ = read_run(scratch_dir)
        d_tok, s_tok = tokens_to_reach(d_points, target), tokens_to_reach(s_points, target)
        ratio = f"{d_tok / s_tok:.0%}" if d_tok and s_tok else "-"
        if d_tok and not s_tok:
            ratio = f"<{d_tok / s_points[-1][0]:.0%}"
        fmt = lambda t, pts: short(t) if t else f">{short(pts[-1][0])}"
        print(f"{name:<12} {fmt(d_tok, d_points):>12} {fmt(s_tok, s_points):>12} {ratio:>7}  "
              f"{d_points[-1][1]:.4f} / {s_points[-1][1]:.4f}")
        rgb = colors[i % len(colors)]
        curves.append((f"distilled {name}", rgb, False, d_points))
        curves.append((f"scratch {name}", rgb, True, s_points))
    if args.png:
        draw(curves, target, args.png)
        print(f"curves -> {args.png}")


if __name__ == "__main__":
    main()
