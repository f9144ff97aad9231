#!/usr/bin/env bash
# The whole test suite, as CI runs it: starts the servers the tests need,
# then checks formatting, lints, docs, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "servers"
scripts/services.sh

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "each feature alone (scripts/features.sh)"
scripts/features.sh

step "cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --all-features --no-fail-fast
    # nextest does not run doctests.
    cargo test --workspace --all-features --doc
else
    cargo test --workspace --all-features --no-fail-fast
fi

step "the cluster demo (scripts/cluster-demo.sh --check)"
scripts/cluster-demo.sh --check
