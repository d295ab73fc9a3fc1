#!/usr/bin/env bash
# Runs every test of the workspace: unit tests, the schema compatibility check, and the
# integration tests, which start their own Apache Kafka brokers (fetched from Maven Central here
# if missing), OpenSSH servers (Debian's openssh-server, installed here if missing), a headless
# chromium for the audit page (Debian's chromium and chromium-driver, installed here if missing), and the
# store's tests on SQLite and on PostgreSQL at 127.0.0.1:5432 (Debian's postgresql: installed and
# started here, in a cluster of its own, when nothing answers there).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
apt_updated=""
# Installs Debian packages, updating the package lists once per run.
apt_install() {
  if [ -z "$apt_updated" ]; then
    $sudo apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# What building gridsync needs besides Rust (CMake for librdkafka, ...).
"$root/deploy/build-deps.sh"

# Apache Kafka runs on Java and is fetched with Maven.
if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
  echo "installing Debian's Java runtime and Maven for Apache Kafka..." >&2
  apt_install default-jre-headless maven
fi
"$root/deploy/local-broker.sh" install

# The secured-cluster test makes its certificates with openssl.
if ! command -v openssl >/dev/null; then
  echo "installing Debian's openssl for the secured-cluster test's certificates..." >&2
  apt_install openssl
fi

# The SFTP mailbox tests run Debian's OpenSSH server (sshd) on a loopback port.
if [ ! -x "${SSHD_BIN:-/usr/sbin/sshd}" ] || ! command -v ssh-keygen >/dev/null; then
  echo "installing Debian's openssh-server for the SFTP tests..." >&2
  apt_install openssh-server openssh-client
fi

# The audit page is tested in a real headless browser: Debian's chromium, driven by chromedriver.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  echo "installing Debian's chromium and chromium-driver for the audit page's browser test..." >&2
  apt_install chromium chromium-driver
fi

# The audit console's accessibility is checked in that browser by axe-core (npm), kept under
# ~/.cache/gridsync (the tests find it there, or at GRIDSYNC_AXE_JS).
axe_dir="$HOME/.cache/gridsync/axe-core"
if [ ! -f "$axe_dir/node_modules/axe-core/axe.min.js" ]; then
  echo "installing axe-core (npm) for the audit console's accessibility check..." >&2
  mkdir -p "$axe_dir"
  npm install --silent --no-audit --no-fund --prefix "$axe_dir" axe-core@4.10 >&2
fi
export GRIDSYNC_AXE_JS=${GRIDSYNC_AXE_JS:-$axe_dir/node_modules/axe-core/axe.min.js}

# The alert rules are checked with Prometheus's own promtool (Debian's prometheus package).
if ! command -v promtool >/dev/null; then
  echo "installing Debian's prometheus (promtool) to check the alert rules..." >&2
  apt_install prometheus
fi

# Alertmanager's route is checked with its own amtool (Debian's prometheus-alertmanager).
if ! command -v amtool >/dev/null; then
  echo "installing Debian's prometheus-alertmanager (amtool) to check the alert routing..." >&2
  apt_install prometheus-alertmanager
fi

# The deployment files are loaded as the real tools load them: docker-compose.yml by the
# compose-spec loader and the kustomizations by kustomize (both Go libraries, built from the Go
# module proxy into tests/deploy-check), the Kubernetes manifests checked against the Kubernetes
# API schemas by kubernetes-validate (PyPI), all kept under ~/.cache/gridsync.
tools_dir="$HOME/.cache/gridsync"
export GRIDSYNC_DEPLOY_CHECK=${GRIDSYNC_DEPLOY_CHECK:-$tools_dir/bin/deploy-check}
if ! command -v go >/dev/null; then
  echo "installing Debian's golang for the deployment files' checks..." >&2
  apt_install golang
fi
echo "building tests/deploy-check (compose-spec loader, kustomize)..." >&2
(cd "$root/tests/deploy-check" && go build -o "$GRIDSYNC_DEPLOY_CHECK" .)
export GRIDSYNC_KUBERNETES_VALIDATE=${GRIDSYNC_KUBERNETES_VALIDATE:-$tools_dir/venv/bin/kubernetes-validate}
if [ ! -x "$GRIDSYNC_KUBERNETES_VALIDATE" ]; then
  echo "installing kubernetes-validate (PyPI) to check the Kubernetes manifests..." >&2
  python3 -m venv "$tools_dir/venv" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$tools_dir/venv"; }
  "$tools_dir/venv/bin/pip" install --quiet kubernetes-validate==1.37.0
fi

# The quick start's test runs deploy/run-local.sh itself, which uses curl, python3 and perl.
quick_start_tools=""
for tool in curl python3 perl; do
  command -v "$tool" >/dev/null || quick_start_tools="$quick_start_tools $tool"
done
if [ -n "$quick_start_tools" ]; then
  echo "installing Debian's$quick_start_tools for the quick start's test..." >&2
  # shellcheck disable=SC2086 # one package per word
  apt_install $quick_start_tools
fi

# The store's tests use PostgreSQL as well as SQLite (GRIDSYNC_TEST_POSTGRES_URL overrides).
"$root/deploy/local-postgres.sh"
cargo build --workspace --locked --quiet
echo "== schema compatibility"
cargo run --locked --quiet -p gridsync-cli -- schemas check
echo "== tests"
cargo test --workspace --locked --no-fail-fast
