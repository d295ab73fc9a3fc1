#!/usr/bin/env bash
# The local Kafka-compatible broker: Tansu 0.6.0 from crates.io, on 127.0.0.1.
#
#   deploy/local-broker.sh install                 install Tansu if it is not there (~10 min once, then cached)
#   deploy/local-broker.sh start [sqlite|memory]   start it in the background (default sqlite: durable)
#   deploy/local-broker.sh stop | status
#
# Environment: GRIDSYNC_BROKER_PORT (9092), GRIDSYNC_LOCAL_DIR (.local in the checkout).
# Storage: sqlite keeps records across restarts. memory is faster but Tansu 0.6.0's memory
# engine drops the rest of a record batch when a fetch starts inside it, so a consumer
# resuming from a committed offset can skip records: use it only for throwaway runs.
set -euo pipefail

TANSU_VERSION=0.6.0
root=$(cd "$(dirname "$0")/.." && pwd)
local_dir=${GRIDSYNC_LOCAL_DIR:-$root/.local}
port=${GRIDSYNC_BROKER_PORT:-9092}
pid_file=$local_dir/tansu.pid
export PATH="$HOME/.cargo/bin:$PATH"

installed() {
    command -v tansu >/dev/null 2>&1 && [ "$(tansu --version 2>/dev/null | awk '{print $2}')" = "$TANSU_VERSION" ]
}

install() {
    if installed; then
        return
    fi
    echo "installing tansu $TANSU_VERSION with SQLite storage (takes about 10 minutes on 2 cores, once)..." >&2
    # libsql and dynostore: the default build only has a null storage engine.
    cargo install tansu --version "$TANSU_VERSION" --locked --features libsql,dynostore >&2
}

running() {
    [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

wait_for_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "tansu did not open 127.0.0.1:$port; see $local_dir/tansu.log" >&2
    return 1
}

start() {
    local storage=${1:-sqlite}
    install
    if running; then
        echo "tansu already running (pid $(cat "$pid_file")) on 127.0.0.1:$port" >&2
        return
    fi
    mkdir -p "$local_dir/tansu-data"
    case $storage in
        sqlite) engine="sqlite://tansu.db" ;; # relative to its data folder: Tansu mangles absolute paths
        memory) engine="memory://tansu/" ;;
        *) echo "storage is sqlite or memory, not $storage" >&2; exit 2 ;;
    esac
    (
        cd "$local_dir/tansu-data"
        nohup tansu broker \
            --listener-url "tcp://127.0.0.1:$port" \
            --advertised-listener-url "tcp://127.0.0.1:$port" \
            --storage-engine "$engine" >>"$local_dir/tansu.log" 2>&1 &
        echo $! >"$pid_file"
    )
    wait_for_port
    echo "tansu $TANSU_VERSION running on 127.0.0.1:$port ($storage storage, data in $local_dir/tansu-data, log $local_dir/tansu.log)" >&2
}

stop() {
    if running; then
        kill "$(cat "$pid_file")"
        echo "tansu stopped" >&2
    fi
    rm -f "$pid_file"
}

case ${1:-} in
    install) install ;;
    start) start "${2:-sqlite}" ;;
    stop) stop ;;
    status) if running; then echo "running (pid $(cat "$pid_file")) on 127.0.0.1:$port"; else echo "not running"; exit 1; fi ;;
    *) sed -n '2,12p' "$0" >&2; exit 2 ;;
esac
