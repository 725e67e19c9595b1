#!/usr/bin/env python3
"""Where one kernel spends its time, source line by source line (python3 standard library).

Reads the CSV of `ncu -i REPORT --page source --csv --print-source cuda,sass` (a report
taken with `--set full --import-source yes` of a build with -lineinfo: each source line,
then its SASS instructions with their counters) and prints, largest first, the source
lines with their share of the warp stall samples, of the executed instructions, of the
excess shared-memory wavefronts (bank conflicts) and of the excess global sectors
(uncoalesced or split accesses), then the same shares by SASS opcode. A load or store
that appears as LD / ST (generic) or as four 32-bit STG for one 16-byte store shows there.

    python3 tools/ncu_lines.py [--top 30] < kernel-source.csv
"""
import argparse
import csv
import re
import sys

STALL = "Warp Stall Sampling (All Samples)"
INSTR = "Instructions Executed"
SHARED_EXCESS = "L1 Wavefronts Shared Excessive"
GLOBAL_EXCESS = "L2 Theoretical Sectors Global Excessive"
COUNTERS = (STALL, INSTR, SHARED_EXCESS, GLOBAL_EXCESS)


def number(text):
    try:
        return float(text.replace(",", ""))
    except (AttributeError, ValueError):
        return 0.0


def read(lines):
    """(per source line, per opcode) counter sums: {key: [stall, instr, shx, glx]}."""
    by_line, by_op = {}, {}
    header, where, source = None, "?", ""
    for row in csv.reader(lines):
        if len(row) >= 2 and row[0] == "File Path":
            where = row[1].rsplit("/", 1)[-1]
        elif len(row) > 3 and row[0] == "Line No":
            header = {name: i for i, name in enumerate(row)}
            missing = [c for c in COUNTERS if c not in header]
            if missing:
                sys.exit(f"ncu_lines: the CSV has no {', '.join(missing)} column "
                         "(profile with --set full --import-source yes)")
        elif header is None or len(row) < len(header):
            continue
        elif row[0]:  # a source line: its instructions follow
            source = f"{where}:{row[0]} {row[1].strip()}"
        else:  # a SASS instruction: column 3 holds its text
            op = re.match(r"\s*(?:@!?U?P\w+\s+)?([A-Z0-9]+(?:\.[A-Z0-9]+)*)", row[3])
            values = [number(row[header[c]]) for c in COUNTERS]
            for table, key in ((by_line, source), (by_op, op.group(1) if op else "?")):
                sums = table.setdefault(key, [0.0] * len(COUNTERS))
                for i, v in enumerate(values):
                    sums[i] += v
    if not by_line:
        sys.exit("ncu_lines: no SASS rows in the input (use --print-source cuda,sass)")
    return by_line, by_op


def show(title, table, top):
    totals = [sum(v[i] for v in table.values()) or 1.0 for i in range(len(COUNTERS))]
    print(f"{title:90s} {'stall':>6s} {'instr':>6s} {'shx':>6s} {'glx':>6s}")
    for key in sorted(table, key=lambda k: -table[k][0])[:top]:
        cells = " ".join(f"{100 * table[key][i] / totals[i]:5.1f}%" for i in range(len(COUNTERS)))
        print(f"{key[:90]:90s} {cells}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--top", type=int, default=30, help="lines (and opcodes) to print")
    args = ap.parse_args()
    by_line, by_op = read(sys.stdin)
    totals = [sum(v[i] for v in by_line.values()) for i in range(len(COUNTERS))]
    print(f"stall samples {totals[0]:.0f}, instructions {totals[1]:.4g}, excess shared "
          f"wavefronts {totals[2]:.4g}, excess global sectors {totals[3]:.4g}\n"
          "(shares: stall samples, executed instructions, excess shared wavefronts, "
          "excess global sectors)\n")
    show("source line", by_line, args.top)
    print()
    show("opcode", by_op, args.top)


if __name__ == "__main__":
    main()
