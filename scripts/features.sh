#!/usr/bin/env bash
# Every feature builds on its own: session-core with each feature alone
# (no defaults), and session-actix with none, with only the features that
# change its own code, and with the admin command line. A `cfg` that only
# compiles beside another feature (or leaves a warning there) fails here,
# not in a user's build.
set -euo pipefail
cd "$(dirname "$0")/.."

check() {
    printf -- '--> cargo check %s\n' "$*"
    local out
    out=$(cargo check --quiet "$@" 2>&1) || { printf '%s\n' "$out"; return 1; }
    if grep -q '^warning' <<<"$out"; then
        printf '%s\n' "$out"
        return 1
    fi
}

core_features=(
    memory filesystem cookie redis redis-cluster redis-tls redis-sentinel
    memcached sql-postgres sql-mysql sql-sqlite mongodb msgpack flask metrics
    testing
)

check -p session-core --no-default-features
for feature in "${core_features[@]}"; do
    check -p session-core --no-default-features --features "$feature"
done
check -p session-actix --no-default-features
check -p session-actix --no-default-features --features cookie
check -p session-actix --no-default-features --features flask
check -p session-actix --no-default-features --features admin --bins
