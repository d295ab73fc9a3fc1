#!/usr/bin/env bash
# Creates the files docker-compose.yml reads its secrets from, under ./.secrets (outside git):
# random client and webhook secrets for the simulators (replace them with your hub's and Lens's
# for real systems), and an audit-view token, printed once, whose hash alone is kept. Existing
# files are left as they are: run it again safely.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${SECRETS_DIR:-.secrets}
mkdir -p "$dir"
chmod 700 "$dir"
umask 077
for secret in amplience-client-secret amplience-webhook-secret lens-client-secret; do
  if [ ! -s "$dir/$secret" ]; then
    head -c 24 /dev/urandom | base64 >"$dir/$secret"
    echo "created $dir/$secret (random: put your own there for a real system)"
  fi
done
if [ ! -s "$dir/audit-tokens.toml" ]; then
  token=$(python3 -c 'import secrets; print("gsa_" + secrets.token_hex(32))')
  hash=$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)
  printf '[[token]]\nname = "compose"\nsha256 = "%s"\n' "$hash" >"$dir/audit-tokens.toml"
  echo "created $dir/audit-tokens.toml; the audit view's token (shown once, keep it): $token"
fi
# Readable by the containers' unprivileged user (compose mounts the files as they are).
chmod 644 "$dir"/* && chmod 755 "$dir"
