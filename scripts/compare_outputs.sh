#!/usr/bin/env bash
# Behaviour check for refactors that must change nothing: trains each preset once with BEFORE,
# then runs `analyze` and `report` on two copies of the run, one with each binary, and compares
# analysis.json (timing fields removed) and every report figure (figures/*.svg) byte for byte.
#
#   scripts/compare_outputs.sh [--ignore-keys K1,K2] [--ignore-figures F1,F2] BEFORE_BIN AFTER_BIN [PRESET ...]
#   (default presets: tiny tiny_l2 tiny_mix)
#
# Build BEFORE from the commit before the change (e.g. in a `git worktree`), AFTER from the
# change. Exits non-zero, listing what differs, if anything does. A change that only adds
# output names what it adds, and everything else must still be identical:
#   --ignore-keys K1,K2      drop these keys wherever they occur in analysis.json (on both sides)
#   --ignore-figures F1,F2   leave out figures/F1.svg ... (shell patterns, e.g. 'failure_families_*')
# e.g. (#25) --ignore-keys failure_families,logit_attribution,fails_when --ignore-figures logit_attribution
set -euo pipefail
ignore_keys=""; ignore_figures=()
while [ $# -gt 0 ]; do
    case "$1" in
        --ignore-keys) ignore_keys=$2; shift 2 ;;
        --ignore-figures) IFS=, read -r -a names <<<"$2"; for f in "${names[@]}"; do ignore_figures+=(-x "$f.svg"); done; shift 2 ;;
        --*) echo "unknown option $1 (expected --ignore-keys or --ignore-figures)" >&2; exit 2 ;;
        *) break ;;
    esac
done
[ $# -ge 2 ] || { echo "usage: $0 [--ignore-keys K1,K2] [--ignore-figures F1,F2] BEFORE_BIN AFTER_BIN [PRESET ...]" >&2; exit 2; }
before=$(realpath "$1"); after=$(realpath "$2"); shift 2
presets=("$@")
[ $# -gt 0 ] || presets=(tiny tiny_l2 tiny_mix)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for p in "${presets[@]}"; do
    "$before" train --preset "$p" --out "$work/$p/base" --quiet --threads 1
    "$before" eval "$work/$p/base" --exhaustive --per-class 200 >/dev/null 2>&1
    for side in before after; do
        bin=$before; [ "$side" = after ] && bin=$after
        cp -r "$work/$p/base" "$work/$p/$side"
        "$bin" analyze "$work/$p/$side" --threads 1 >/dev/null 2>&1
        "$bin" report "$work/$p/$side" >/dev/null
        # Timings differ from run to run: drop every "seconds" field and the stage timings, and
        # the keys named by --ignore-keys.
        python3 - "$work/$p/$side/analysis.json" "$ignore_keys" <<'PY'
import json, sys
drop = {"seconds", "stages"} | {k for k in sys.argv[2].split(",") if k}
def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if k not in drop}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v
path = sys.argv[1]
json.dump(strip(json.load(open(path))), open(path + ".untimed", "w"), indent=1, sort_keys=True)
PY
    done
    if ! cmp -s "$work/$p/before/analysis.json.untimed" "$work/$p/after/analysis.json.untimed"; then
        echo "$p: analysis.json differs:"; diff "$work/$p/before/analysis.json.untimed" "$work/$p/after/analysis.json.untimed" | head -20
        status=1
    fi
    if ! diff -r -q ${ignore_figures[@]+"${ignore_figures[@]}"} "$work/$p/before/figures" "$work/$p/after/figures"; then
        echo "$p: report figures differ"; status=1
    fi
    n=$(ls "$work/$p/before/figures" | wc -l)
    ignored=""; [ -n "$ignore_keys" ] || [ ${#ignore_figures[@]} -gt 0 ] && ignored=" (ignoring keys '$ignore_keys', figures: ${ignore_figures[*]:-none})"
    [ "$status" = 0 ] && echo "$p: analysis.json and all $n figures identical$ignored"
done
exit $status
