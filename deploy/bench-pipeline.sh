#!/usr/bin/env bash
# The pipeline benchmark (tests/benches/pipeline.rs): the release binaries on a broker of their
# own, partners' orders from files to Amplience and the audit store, beside a raw librdkafka
# client; prints each stage's rate, latency at a fixed load, CPU and memory per binary.
#   deploy/bench-pipeline.sh                  GRIDSYNC_BENCH_ORDERS (3000), GRIDSYNC_BENCH_RATE (200),
#                                             GRIDSYNC_BENCH_SCALE_ORDERS (1000), GRIDSYNC_BENCH_AUDIT_BACKLOG (100000)
#   deploy/bench-pipeline.sh soak             a million orders, each binary's RSS sampled (not in CI)
# Its output, with the machine, goes in docs/BENCHMARKS.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
"$root/deploy/build-deps.sh"
"$root/deploy/local-broker.sh" install
# The scale-out phase's instances share a PostgreSQL store; the audit phase records into one too.
"$root/deploy/local-postgres.sh"
cargo build --release --workspace --bins --locked
if [ "${1:-}" = soak ]; then
  export GRIDSYNC_BENCH_SOAK=1
fi
cargo bench --locked -p gridsync-tests --bench pipeline
