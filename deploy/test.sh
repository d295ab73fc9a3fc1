#!/usr/bin/env bash
# Runs every test of the workspace: unit tests, the schema compatibility check, and the
# integration tests, which start their own Tansu brokers (installed here if missing) and OpenSSH
# servers (Debian's openssh-server, installed here if missing), and the store's tests on SQLite
# and on the PostgreSQL server at 127.0.0.1:5432.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"

"$root/deploy/local-broker.sh" install
# The SFTP mailbox tests run Debian's OpenSSH server (sshd) on a loopback port.
if [ ! -x "${SSHD_BIN:-/usr/sbin/sshd}" ] || ! command -v ssh-keygen >/dev/null; then
  echo "installing Debian's openssh-server for the SFTP tests..." >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends openssh-server openssh-client >/dev/null
fi
# The store's tests use PostgreSQL as well as SQLite (GRIDSYNC_TEST_POSTGRES_URL overrides).
postgres_url=${GRIDSYNC_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
if command -v pg_isready >/dev/null && ! pg_isready -q -d "$postgres_url"; then
  echo "PostgreSQL is not answering at $postgres_url: start it, or set GRIDSYNC_TEST_POSTGRES_URL" >&2
  exit 1
fi
cargo build --workspace --locked --quiet
echo "== schema compatibility"
cargo run --locked --quiet -p gridsync-cli -- schemas check
echo "== tests"
cargo test --workspace --locked --no-fail-fast
