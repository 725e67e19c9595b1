#!/usr/bin/env python3
"""Per-kernel time of a training step from an Nsight Compute CSV (python3 standard library).

Reads `ncu --csv --page raw --print-units base --metrics gpu__time_duration.sum` output
(one row per kernel launch), groups launches by kernel name (parameter lists cut off),
and prints each group's time per step, launches per step and share of the total, largest
first. `--steps` is how many optimizer steps the profiled run took, so totals are
divided by it (kernels of the one-time start-up are spread over them too; they are few
and short).

    python3 tools/ncu_summary.py --steps=3 < ncu.csv
"""
import argparse
import csv
import re
import sys


def short_name(name):
    """The kernel's name without namespaces, return type and parameter list (template
    arguments kept: they tell a kernel's variants apart)."""
    name = name.replace("(anonymous namespace)::", "")
    name = re.sub(r"^(void|static) ", "", name)
    depth, cut = 0, len(name)
    for i, ch in enumerate(name):  # the parameter list: the first "(" outside <...>
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0:
            cut = i
            break
    name = name[:cut].replace(" ", "")
    return name.split("::")[-1] or name


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1, help="optimizer steps in the profiled run")
    ap.add_argument("--top", type=int, default=25, help="groups to print")
    args = ap.parse_args()
    lines = [l for l in sys.stdin if l.startswith('"')]  # ncu's own log lines are unquoted
    rows = list(csv.DictReader(lines))
    totals, counts = {}, {}
    for r in rows:
        value = r.get("gpu__time_duration.sum", "")
        try:
            ns = float(value.replace(",", ""))
        except ValueError:
            continue  # the units row
        key = short_name(r.get("Kernel Name", "?"))
        totals[key] = totals.get(key, 0.0) + ns
        counts[key] = counts.get(key, 0) + 1
    if not totals:
        sys.exit("ncu_summary: no kernel rows with gpu__time_duration.sum in the input")
    whole = sum(totals.values())
    print(f"{'kernel':48s} {'ms/step':>9s} {'calls/step':>10s} {'share':>7s}")
    for key in sorted(totals, key=totals.get, reverse=True)[: args.top]:
        print(f"{key[:48]:48s} {totals[key] / args.steps / 1e6:9.3f} "
              f"{counts[key] / args.steps:10.1f} {100 * totals[key] / whole:6.1f}%")
    print(f"{'all kernels':48s} {whole / args.steps / 1e6:9.3f} "
          f"{sum(counts.values()) / args.steps:10.1f} {100.0:6.1f}%")


if __name__ == "__main__":
    main()
