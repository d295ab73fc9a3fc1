#!/usr/bin/env bash
# Runs every test of the workspace: unit tests, the schema compatibility check, and the
# integration tests, which start their own Tansu brokers (installed here if missing).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"

"$root/deploy/local-broker.sh" install
cargo build --workspace --locked --quiet
echo "== schema compatibility"
cargo run --locked --quiet -p gridsync-cli -- schemas check
echo "== tests"
cargo test --workspace --locked --no-fail-fast
