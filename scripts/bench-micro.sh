#!/usr/bin/env bash
# `make bench-micro`: divan micro-benchmarks of the router's pure path (benches/route.rs) for a
# tools/call of 1 KiB, 16 KiB and 1 MiB: median time and allocations per call. Writes
# bench/micro.md, which `make bench` includes in BENCHMARKS.md.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
mkdir -p .run/bench
cargo bench --bench route 2>&1 | tee .run/bench/micro.txt
python3 - .run/bench/micro.txt bench/micro.md <<'PY'
import datetime, re, sys
text = open(sys.argv[1]).read().splitlines()
rows, group, current = [], None, None
for i, line in enumerate(text):
    cells = [c.strip() for c in re.sub(r"^[\s│├╰─]+", "", line).split("│")]
    name = re.match(r"^[│\s]*[├╰]─ (\S+)", line)
    if name and not name.group(1).isdigit():
        group = name.group(1)
        continue
    if name and name.group(1).isdigit() and len(cells) >= 4:
        current = {"group": group, "size": int(name.group(1)), "median": cells[2]}
        rows.append(current)
        continue
    if current and cells and cells[0] == "alloc:" and "allocs" not in current:
        nxt = [c.strip() for c in re.sub(r"^[\s│├╰─]+", "", text[i + 1]).split("│")]
        nxt2 = [c.strip() for c in re.sub(r"^[\s│├╰─]+", "", text[i + 2]).split("│")]
        current["allocs"], current["bytes"] = nxt[0], nxt2[0]
def size(n):
    return f"{n // 1048576} MiB" if n >= 1048576 else f"{n // 1024} KiB"
out = ["## Micro-benchmarks (`make bench-micro`)", "",
       "divan (`benches/route.rs`), one `tools/call` of the given size: `parse_decide_respond` is parse →",
       "decide → respond → the answer encoded for the wire; `parse_only` is the parser alone. Median of",
       "100 samples; allocations counted by divan's allocation profiler (per call).", "",
       f"- command: `make bench-micro`; date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}", "",
       "| bench | body | median | allocations | bytes allocated |", "|---|---|---|---|---|"]
for r in rows:
    out.append(f"| {r['group']} | {size(r['size'])} | {r['median']} | {r.get('allocs', '0')} | {r.get('bytes', '0 B')} |")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print("\n".join(out))
PY
