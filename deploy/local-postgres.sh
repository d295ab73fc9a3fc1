#!/usr/bin/env bash
# PostgreSQL for the store's tests and the pipeline benchmark: when nothing answers at
# 127.0.0.1:5432 (and GRIDSYNC_TEST_POSTGRES_URL is not set), installs Debian's postgresql if
# missing and starts a cluster of gridsync's own there, trusting local connections (test data
# only), with a database `test`. Then checks that the URL the tests use answers.
set -euo pipefail

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

postgres_url=${GRIDSYNC_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
if [ -z "${GRIDSYNC_TEST_POSTGRES_URL:-}" ] && ! { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; }; then
  if ! command -v pg_createcluster >/dev/null; then
    echo "installing Debian's postgresql..." >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql postgresql-client >/dev/null
  fi
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  if pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$version gridsync"; then
    $sudo pg_ctlcluster "$version" gridsync start
  else
    echo "starting a PostgreSQL $version cluster on 127.0.0.1:5432..." >&2
    $sudo pg_createcluster "$version" gridsync -p 5432 --start -- --auth-host=trust --auth-local=trust >/dev/null
  fi
  for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE test"
fi
if command -v pg_isready >/dev/null && ! pg_isready -q -d "$postgres_url"; then
  echo "PostgreSQL is not answering at $postgres_url: start it, or set GRIDSYNC_TEST_POSTGRES_URL" >&2
  exit 1
fi
