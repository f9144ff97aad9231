#!/usr/bin/env bash
# Runs the HTTP suite (memory, signed memory, filesystem backends) and the
# store acceptance suite (memory, filesystem) N times in a row (default
# 50) and counts the runs that failed. Builds once, then runs the test
# binaries directly.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-50}"

binary() { # package, test target
    cargo test -q -p "$1" --all-features --test "$2" --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$2" | tail -1
}

suite="$(binary session-tests suite)"
stores="$(binary session-core store_suite)"
failed=0
for i in $(seq 1 "$runs"); do
    ok=1
    "$suite" --quiet memory filesystem >/tmp/flaky-suite.log 2>&1 || ok=0
    "$stores" --quiet memory filesystem >/tmp/flaky-stores.log 2>&1 || ok=0
    if [ "$ok" = 0 ]; then
        failed=$((failed + 1))
        echo "run $i failed:"
        grep -h -E "^test .* FAILED|panicked" /tmp/flaky-suite.log /tmp/flaky-stores.log | head -5
    fi
done
echo "flaky.sh: $((runs - failed)) of $runs runs passed"
[ "$failed" = 0 ]
