#!/usr/bin/env python3
"""Summarise a distillation demo (python3 standard library only).

Reads the metrics.jsonl of the teacher, the distilled students and the students trained
from scratch, and reports for each student the tokens it needed to reach the teacher's
final validation loss + 10% (the first validation at or under it), the ratio of
distilled to from-scratch tokens, and the final validation losses (the curves themselves:
`bolt plot` of the same run directories).

    python3 tools/distill_report.py --teacher=out/t --student=lightning:out/dl:out/sl \
        --student=gla:out/dg:out/sg
"""
import argparse
import json


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


def short(tokens):
    return f"{tokens / 1e6:.2f}M" if tokens >= 1e6 else f"{tokens / 1e3:.0f}K"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--teacher", required=True, help="the teacher's out_dir")
    ap.add_argument("--student", action="append", required=True,
                    help="NAME:DISTILLED_DIR:SCRATCH_DIR")
    args = ap.parse_args()
    teacher_points, _, _ = read_run(args.teacher)
    teacher = teacher_points[-1][1]
    target = teacher * 1.1
    print(f"teacher val loss {teacher:.4f}; target (+10%) {target:.4f}")
    print(f"{'student':<12} {'distilled':>12} {'scratch':>12} {'ratio':>7}  final val (distilled / scratch)")
    for spec in args.student:
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


if __name__ == "__main__":
    main()
