#!/usr/bin/env bash
# Fuzzes the EDI parser and mapper (libFuzzer through cargo-fuzz) for N seconds (default 60).
# Seeds: connectors/edi/fuzz/corpus/parse_and_map/*.edi; a crash is saved under
# connectors/edi/fuzz/artifacts/ and the command fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
cd "$root/connectors/edi"
# cargo-fuzz needs nightly features; the stable toolchain provides them with RUSTC_BOOTSTRAP.
RUSTC_BOOTSTRAP=1 cargo fuzz run parse_and_map --fuzz-dir fuzz -- -max_total_time="${1:-60}"
