#!/usr/bin/env bash
# What building gridsync needs besides Rust: a C toolchain, CMake (librdkafka is built with it,
# with libcurl linked in statically for OAUTHBEARER/OIDC) and OpenSSL's headers. Installs the
# missing ones from Debian's packages (with sudo when not root); does nothing when all are there.
set -euo pipefail
missing=()
command -v cc >/dev/null || missing+=(build-essential)
command -v cmake >/dev/null || missing+=(cmake)
command -v pkg-config >/dev/null || missing+=(pkg-config)
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
echo "installing Debian's ${missing[*]} to build gridsync..." >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
