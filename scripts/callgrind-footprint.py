#!/usr/bin/env python3
"""The code a processor runs per call, as distinct cache lines and pages: reads a callgrind
output written with --dump-instr=yes over N calls and counts the 64-byte lines of code (and the
4 KiB pages holding them) with an instruction that ran at least N/2 times (about every other
call). Under load the caches and
the TLB are shared with Envoy, so this footprint, more than the instruction count, is what a
call has to bring back into them each time.

usage: callgrind-footprint.py CALLGRIND_OUT N [TOP]
prints: code lines/call L (K KiB) pages P, then, with TOP, the TOP functions holding most lines
"""
import collections
import re
import sys


def main():
    path, calls = sys.argv[1], int(sys.argv[2])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    # callgrind's compressed ids ("(n) name" once, "(n)" after), numbered apart for objects,
    # functions and files
    tables = {"ob": {}, "fn": {}, "fl": {}}
    fn = None
    last = 0
    after_calls = False
    npos = 1
    runs_at = {}  # (object, instruction address) -> times it ran
    fns_at = collections.defaultdict(set)
    obj = None

    def name(kind, v):
        names = tables[kind]
        m = re.match(r"\((\d+)\)(?: (.*))?", v.strip())
        if not m:
            return v.strip()
        if m.group(2) is not None:
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), m.group(1))

    for line in open(path, errors="replace"):
        if line.startswith("positions:"):
            npos = len(line.split()) - 1
            continue
        if line.startswith("ob="):
            obj = name("ob", line[3:])
            continue
        if line.startswith("fn="):
            fn = name("fn", line[3:])
            continue
        kind = {"cob": "ob", "cfn": "fn", "cfi": "fl", "cfl": "fl", "fl": "fl", "fi": "fl", "fe": "fl"}
        key = line.split("=", 1)[0]
        if "=" in line and key in kind:
            # Keep the name tables complete; these do not change where costs land.
            name(kind[key], line[line.index("=") + 1:])
            continue
        if line.startswith("calls="):
            after_calls = True
            continue
        if not line or line[0] not in "0123456789+-*":
            continue
        parts = line.split()
        p = parts[0]
        if p == "*":
            addr = last
        elif p[0] in "+-":
            addr = last + int(p, 0) if p[0] == "+" else last - int(p[1:], 0)
        else:
            addr = int(p, 0)
        last = addr
        if after_calls:
            # The cost line of a call: inclusive cost of the callee, not code run here.
            after_calls = False
            continue
        if len(parts) <= npos:
            continue
        runs_at[(obj, addr)] = runs_at.get((obj, addr), 0) + int(parts[npos])
        fns_at[(obj, addr >> 6)].add(fn)

    # An instruction's count is how many times it ran: a line is run on a call when one of its
    # instructions is.
    runs_of_line = {}
    for (o, addr), runs in runs_at.items():
        key = (o, addr >> 6)
        runs_of_line[key] = max(runs_of_line.get(key, 0), runs)
    hot = [k for k, runs in runs_of_line.items() if runs >= calls // 2]
    pages = {(o, l >> 6) for o, l in hot}
    print(f"code lines/call {len(hot)} ({len(hot) * 64 // 1024} KiB) pages {len(pages)}")
    if top:
        by_fn = collections.Counter(min(fns_at[k]) for k in hot)
        for f, n in by_fn.most_common(top):
            print(f"{n:6d}  {f[:150]}")


if __name__ == "__main__":
    main()
