#!/usr/bin/env bash
# The layering rules of ARCHITECTURE.md, checked from the source: no import circle among the
# router's modules, and no import of the router from the broker. Prints the router's module graph
# (who imports whom) and exits non-zero on a violation. Usage: scripts/check-layers.sh [repo root]
set -euo pipefail
root="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
cd "$root"
status=0

# 1. The broker never imports the router.
if grep -rnE 'crate::router|super::super::router|mcp_router::router' src/broker; then
  echo "FAIL: the broker imports the router (lines above)"
  status=1
else
  echo "ok: no broker -> router import"
fi

# 2. The router's module graph: module -> the sibling modules it names (`super::x`,
#    `crate::router::x`), from its code (not comments) before its #[cfg(test)] tests.
modname() { # src/router/a.rs, src/router/a/mod.rs and src/router/a/b.rs all belong to `a`
  local f="${1#src/router/}"
  f="${f%.rs}"
  echo "${f%%/*}"
}
edges=$(
  find src/router -name '*.rs' ! -name 'mod.rs' -o -path 'src/router/*/mod.rs' | sort | while read -r f; do
    from=$(modname "$f")
    awk '/^#\[cfg\(test\)\]/ { exit } !/^[[:space:]]*\/\// { print }' "$f" |
      # `super::x`, and each name of a grouped `super::{x, y::z}` (over lines too)
      perl -0777 -ne 'while (/(?:super|crate::router)::(\{[^}]*\}|[a-z_]+)/g) { my $m = $1;
        if ($m =~ /^\{/) { print "$_\n" for $m =~ /(?:^\{|,)\s*([a-z_]+)/g } else { print "$m\n" } }' |
      sort -u |
      while read -r to; do
        if [ "$to" != "$from" ] && { [ -e "src/router/$to.rs" ] || [ -d "src/router/$to" ]; }; then
          echo "$from $to"
        fi
      done
  done | sort -u
)
echo "router module graph (importer -> imported):"
echo "$edges" | awk 'NF { a[$1] = a[$1] " " $2 } END { for (k in a) print "  " k " ->" a[k] }' | sort

# A cycle is what a topological sort cannot order: tsort names it on stderr.
if cycle=$(echo "$edges" | tsort 2>&1 >/dev/null) && [ -z "$cycle" ]; then
  echo "ok: no import circle among src/router modules"
else
  echo "FAIL: import circle among src/router modules:"
  echo "$cycle"
  status=1
fi
exit $status
