#!/usr/bin/env python3
"""Markdown tables from conformance suite result folders (`server --output-dir`).

  conformance_table.py ROOT

ROOT holds one folder per run, named RUN.direct and RUN.gateway (RUN: a requirement set such as
2025-11-25, or `all` for `--suite all`); each holds the suite's server-<scenario>-<timestamp>
folders with their checks.json. Prints, per RUN, scenario | directly | through the gateway, where a
cell is `pass` or `FAIL` with passed/total checks (warnings count as not passed), and below each
table the checks that pass directly and fail through the gateway. Exit status 1 when there is
such a check (a regression the gateway adds), else 0.
"""
import json
import os
import re
import sys


def load(folder):
    """scenario -> {check id: status} for one run."""
    out = {}
    if not os.path.isdir(folder):
        return out
    for entry in sorted(os.listdir(folder)):
        m = re.match(r"server-(.+)-\d{4}-\d\d-\d\dT", entry)
        if not m:
            continue
        checks = {}
        try:
            with open(os.path.join(folder, entry, "checks.json")) as f:
                for i, c in enumerate(json.load(f)):
                    key = c.get("id") or f"check-{i}"
                    # Several checks may share an id: keep each, numbered.
                    while key in checks:
                        key += "'"
                    checks[key] = (c.get("status", "?"), c.get("errorMessage") or "")
        except (OSError, ValueError):
            checks = {"checks.json": ("FAILURE", "no checks.json (the scenario crashed or timed out)")}
        out[m.group(1)] = checks
    return out


def cell(checks):
    if checks is None:
        return "–"
    scored = [s for s, _ in checks.values() if s in ("SUCCESS", "FAILURE", "WARNING")]
    ok = sum(1 for s in scored if s == "SUCCESS")
    if ok == len(scored):
        return f"pass {ok}/{len(scored)}"
    return f"**FAIL** {ok}/{len(scored)}"


def main():
    root = sys.argv[1]
    runs = sorted({n.rsplit(".", 1)[0] for n in os.listdir(root) if n.endswith((".direct", ".gateway"))})
    regressions = 0
    for run in runs:
        direct = load(os.path.join(root, f"{run}.direct"))
        gateway = load(os.path.join(root, f"{run}.gateway"))
        title = "`--suite all`" if run == "all" else f"`--requirements {run}`"
        print(f"\n#### {title}\n")
        print("| scenario | directly | through the gateway |")
        print("|---|---|---|")
        lost = []
        for name in sorted(set(direct) | set(gateway)):
            d, g = direct.get(name), gateway.get(name)
            print(f"| {name} | {cell(d)} | {cell(g)} |")
            for cid, (status, _) in (d or {}).items():
                if status != "SUCCESS":
                    continue
                gs, gm = (g or {}).get(cid, ("MISSING", "not run through the gateway"))
                if gs != "SUCCESS":
                    lost.append(f"{name} / {cid}: {gs} {gm[:300]}")
        def total(res):
            s = [st for c in res.values() for st, _ in c.values()]
            return f"{s.count('SUCCESS')} passed, {s.count('FAILURE')} failed, {s.count('WARNING')} warnings"
        print(f"| **checks** | {total(direct)} | {total(gateway)} |")
        if lost:
            regressions += len(lost)
            print("\nPass directly, fail through the gateway:\n")
            for line in lost:
                print(f"- {line}")
    sys.exit(1 if regressions else 0)


if __name__ == "__main__":
    main()
