#!/usr/bin/env bash
# Browser check of the HTML report: builds a tiny run (train, evaluate, report), opens
# report.html in headless Chromium with no network use, fails on any console message (errors,
# uncaught exceptions, failed loads all appear as CONSOLE lines in Chromium's log) or on a page
# that did not render its sections and figures, and saves a screenshot.
#
#   .ci/browser-check.sh              check target/ci-run/report.html (building it first)
#   .ci/browser-check.sh --self-test  prove the check fails on a page with a deliberate JS error
#   .ci/browser-check.sh FILE.html [MIN_SECTIONS MIN_FIGURES]   check an existing page (default 8, 10)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/ci-browser
mkdir -p "$OUT"

if ! command -v chromium >/dev/null 2>&1; then
    echo "installing Debian's chromium"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi

chrome() {
    local profile
    profile=$(mktemp -d)
    timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --disable-extensions --disable-default-apps --hide-scrollbars \
        --user-data-dir="$profile" --enable-logging=stderr --v=0 "$@"
    local rc=$?
    rm -rf "$profile"
    return $rc
}

# check PAGE MIN_SECTIONS MIN_SVGS: 0 when the page loads without console messages and renders.
check() {
    local page url name log dom
    page=$(realpath "$1")
    url="file://$page"
    name=$(basename "$page" .html)
    log="$OUT/$name.console.log"
    dom="$OUT/$name.dom.html"
    chrome --dump-dom "$url" >"$dom" 2>"$log" || { echo "chromium failed on $page"; cat "$log"; return 1; }
    if grep -q ':CONSOLE' "$log"; then
        echo "console messages on $page:"
        grep ':CONSOLE' "$log"
        return 1
    fi
    local sections svgs
    sections=$(grep -o '<section' "$dom" | wc -l)
    svgs=$(grep -o '<svg' "$dom" | wc -l)
    if [ "$sections" -lt "$2" ] || [ "$svgs" -lt "$3" ]; then
        echo "$page rendered $sections sections and $svgs figures (want at least $2 and $3)"
        return 1
    fi
    chrome --screenshot="$OUT/$name.png" --window-size=1280,2400 "$url" >/dev/null 2>>"$log"
    echo "ok: $page ($sections sections, $svgs figures, no console messages); screenshot $OUT/$name.png"
}

self_test() {
    local bad="$OUT/deliberate-error.html"
    printf '%s\n' '<!DOCTYPE html><html><head><meta charset="utf-8"/><title>bad</title></head><body>' \
        '<section><svg></svg></section><script>undefinedFunction();</script></body></html>' >"$bad"
    if check "$bad" 1 1; then
        echo "self-test FAILED: a page with a JS error passed the check"
        return 1
    fi
    echo "self-test ok: the page with a deliberate JS error was rejected"
}

case "${1:-}" in
    --self-test)
        self_test
        ;;
    "")
        self_test
        cargo run --release --quiet -- run --preset tiny --out target/ci-run --force --quiet
        check target/ci-run/report.html 8 10
        ;;
    *)
        check "$1" "${2:-8}" "${3:-10}"
        ;;
esac
