#!/usr/bin/env bash
# Runs the whole gridsync pipeline on this machine on embedded defaults: the local broker
# (installed if needed), the topics of the catalog, every producer and consumer binary, and
# a few demo events so there is something to see.
#
#   deploy/run-local.sh [--observe]  start everything (returns; the binaries keep running), feed the
#                                    demo on the first start, and report one line per flow;
#                                    --observe also starts Prometheus (Debian's prometheus) with the alert rules
#   deploy/run-local.sh status       what is running, and where its metrics and logs are
#   deploy/run-local.sh report       what each flow did (from the audit store), again
#   deploy/run-local.sh stop         stop the binaries (SIGTERM: they finish, commit and exit) and the broker
#
# A second start keeps everything (broker data, stores, mailboxes) and does not feed the demo
# again; `rm -rf .local/` (after stop) starts over. GRIDSYNC_PORT_OFFSET shifts every port (for
# a second copy beside the first, as the quick start's test runs), GRIDSYNC_SKIP_BUILD=1 uses the
# binaries already built (in GRIDSYNC_BIN_DIR, default target/debug).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
local_dir=${GRIDSYNC_LOCAL_DIR:-$root/.local}
# A cluster of your own (GRIDSYNC_BROKERS) is used as it is; otherwise the local Apache Kafka is started.
own_brokers=${GRIDSYNC_BROKERS:-}
export GRIDSYNC_BROKERS=${GRIDSYNC_BROKERS:-127.0.0.1:${GRIDSYNC_BROKER_PORT:-9092}}
export PATH="$HOME/.cargo/bin:$PATH"
bin=${GRIDSYNC_BIN_DIR:-$root/target/debug}
offset=${GRIDSYNC_PORT_OFFSET:-0}
port() { echo $(($1 + offset)); }
# When the demo was fed (RFC 3339): a second start reports from here instead of feeding it again.
demo_marker=$local_dir/demo-played
# The Trading Grid inbound mailbox: drop EDI files into $GRIDSYNC_TG_MAILBOX_DIR/inbound.
export GRIDSYNC_TG_MAILBOX_DIR=${GRIDSYNC_TG_MAILBOX_DIR:-$local_dir/tg-mailbox}
# Acknowledgements (997/CONTRL/TA1) go to $GRIDSYNC_TG_MAILBOX_DIR/outbound, numbered in this store.
export GRIDSYNC_TG_STORE_URL=${GRIDSYNC_TG_STORE_URL:-sqlite://$local_dir/tg-producer.db}

# Amplience is the local simulator (amp-sim) unless these point elsewhere. `gridsync amplience
# setup` prepares it (content types, the webhook to amp-producer, example templates) as it
# prepares a real hub; the secrets are generated on first start into .local/secrets.
amp_sim=http://127.0.0.1:$(port 9480)
export GRIDSYNC_AMP_LISTEN=${GRIDSYNC_AMP_LISTEN:-127.0.0.1:$(port 9466)}
export GRIDSYNC_AMPLIENCE_API_URL=${GRIDSYNC_AMPLIENCE_API_URL:-$amp_sim/v2/content}
export GRIDSYNC_AMPLIENCE_TOKEN_URL=${GRIDSYNC_AMPLIENCE_TOKEN_URL:-$amp_sim/oauth/token}
export GRIDSYNC_AMPLIENCE_DELIVERY_URL=${GRIDSYNC_AMPLIENCE_DELIVERY_URL:-$amp_sim}
# Media links (package attachments) from amp-sim's media CDN instead of https://{defaultHost}.
media_path='{kind}/{endpoint}/{name}'
export GRIDSYNC_AMPLIENCE_MEDIA_URL=${GRIDSYNC_AMPLIENCE_MEDIA_URL:-$amp_sim/$media_path}
# The simulator is on loopback, which media fetches refuse unless told (links are editors' text).
export GRIDSYNC_AMPLIENCE_MEDIA_ALLOW_PRIVATE_ADDRESSES=${GRIDSYNC_AMPLIENCE_MEDIA_ALLOW_PRIVATE_ADDRESSES:-true}
export GRIDSYNC_AMPLIENCE_HUB_ID=${GRIDSYNC_AMPLIENCE_HUB_ID:-5f0000000000000000000001}
export GRIDSYNC_AMPLIENCE_CLIENT_ID=${GRIDSYNC_AMPLIENCE_CLIENT_ID:-gridsync}
export GRIDSYNC_AMPLIENCE_CLIENT_SECRET_FILE=${GRIDSYNC_AMPLIENCE_CLIENT_SECRET_FILE:-$local_dir/secrets/amplience-client-secret}
export GRIDSYNC_AMP_WEBHOOK_SECRET_FILE=${GRIDSYNC_AMP_WEBHOOK_SECRET_FILE:-$local_dir/secrets/amplience-webhook-secret}
export GRIDSYNC_AMP_STORE_URL=${GRIDSYNC_AMP_STORE_URL:-sqlite://$local_dir/amp-producer.db}
export GRIDSYNC_AMP_WEBHOOK_URL=${GRIDSYNC_AMP_WEBHOOK_URL:-http://$GRIDSYNC_AMP_LISTEN/webhooks/amplience}
# The hub's request budget, shared by the flow consumers (each takes an equal share of it,
# counting each other in one store): scaling out does not multiply the load on the hub.
export GRIDSYNC_AMPLIENCE_HUB_REQUESTS_PER_SECOND=${GRIDSYNC_AMPLIENCE_HUB_REQUESTS_PER_SECOND:-40}
export GRIDSYNC_AMPLIENCE_BUDGET_STORE_URL=${GRIDSYNC_AMPLIENCE_BUDGET_STORE_URL:-sqlite://$local_dir/amplience-budget.db}
# The trading partners, for the consumers and for `gridsync amplience check` (their locales
# choose the templates).
export GRIDSYNC_PARTNERS_FILE=${GRIDSYNC_PARTNERS_FILE:-$root/deploy/partners.toml}

# Trading Grid is the local simulator (tg-sim): Lens on 9490, and a mailbox partner that picks
# up what gridsync writes to the outbound mailbox and answers with acknowledgements.
tg_sim=http://127.0.0.1:$(port 9490)
export GRIDSYNC_LENS_URL=${GRIDSYNC_LENS_URL:-$tg_sim}
export GRIDSYNC_LENS_CLIENT_ID=${GRIDSYNC_LENS_CLIENT_ID:-gridsync}
export GRIDSYNC_LENS_CLIENT_SECRET_FILE=${GRIDSYNC_LENS_CLIENT_SECRET_FILE:-$local_dir/secrets/lens-client-secret}
export GRIDSYNC_LENS_POLL_MS=${GRIDSYNC_LENS_POLL_MS:-2000}

# The audit store (flow 7) and where its page and JSON API listen.
export GRIDSYNC_AUDIT_STORE_URL=${GRIDSYNC_AUDIT_STORE_URL:-sqlite://$local_dir/audit.db}
export GRIDSYNC_AUDIT_LISTEN=${GRIDSYNC_AUDIT_LISTEN:-127.0.0.1:$(port 9476)}
audit_page=http://$GRIDSYNC_AUDIT_LISTEN
# Who may read it: API tokens, stored hashed; the quick start makes one (kept in audit-token).
export GRIDSYNC_AUDIT_TOKENS_FILE=${GRIDSYNC_AUDIT_TOKENS_FILE:-$local_dir/audit-tokens.toml}
audit_token_file=$local_dir/audit-token

# name and metrics port of every long-running binary: both simulators, then what the catalog
# (schemas/topics.toml) lists, its producers and consumers at their ports and the lag exporter,
# as `gridsync catalog binaries` says once it is built.
simulators=("amp-sim $(port 9480)" "tg-sim $(port 9490)")
load_components() {
    components=("${simulators[@]}")
    [ -x "$bin/gridsync" ] || return 0
    local listed
    listed=$("$bin/gridsync" catalog binaries --port-offset "$offset")
    while read -r line; do components+=("$line"); done <<<"$listed"
}
load_components
prometheus_port=$(port 9090)

status() {
    printf '%-24s %-8s %-38s %s\n' component pid metrics log
    for c in "${components[@]}"; do
        set -- $c
        pid=$(cat "$local_dir/pids/$1.pid" 2>/dev/null || true)
        state=$pid
        if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then state=stopped; fi
        url=http://127.0.0.1:$2/metrics
        [ "$1" = amp-sim ] && url="http://127.0.0.1:$2 (Amplience API)"
        [ "$1" = tg-sim ] && url="http://127.0.0.1:$2 (Lens API)"
        printf '%-24s %-8s %-38s %s\n' "$1" "$state" "$url" "$local_dir/logs/$1.log"
    done
    [ -n "$own_brokers" ] || "$root/deploy/local-broker.sh" status || true
    echo "what each says of itself (gridsync status):"
    "$bin/gridsync" status --port-offset "$offset" | sed 's/^/  /' || true
}

# Debian's prometheus scraping every binary (deploy/prometheus/prometheus.yml, ports shifted by
# GRIDSYNC_PORT_OFFSET) with gridsync's alert rules loaded.
start_prometheus() {
    local dir=$local_dir/prometheus
    if ! command -v prometheus >/dev/null; then
        echo "--observe needs Prometheus: apt-get install prometheus (Debian's package); going on without it" >&2
        return
    fi
    if curl -fs "http://127.0.0.1:$prometheus_port/-/ready" >/dev/null 2>&1; then
        echo "Prometheus already answers on 127.0.0.1:$prometheus_port"
        return
    fi
    mkdir -p "$dir/data"
    perl -pe "s/127\.0\.0\.1:(\d+)/'127.0.0.1:'.(\$1 + $offset)/ge" "$root/deploy/prometheus/prometheus.yml" >"$dir/prometheus.yml"
    cp "$root/deploy/prometheus/alerts.yml" "$dir/alerts.yml"
    nohup prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
        --web.listen-address="127.0.0.1:$prometheus_port" >>"$local_dir/logs/prometheus.log" 2>&1 &
    echo $! >"$local_dir/pids/prometheus.pid"
    for _ in $(seq 1 100); do
        curl -fs "http://127.0.0.1:$prometheus_port/-/ready" >/dev/null 2>&1 && break
        sleep 0.2
    done
    echo "Prometheus on http://127.0.0.1:$prometheus_port (targets: /targets, alert rules: /alerts; log $local_dir/logs/prometheus.log)"
}

stop() {
    if [ -f "$local_dir/pids/prometheus.pid" ]; then
        kill -TERM "$(cat "$local_dir/pids/prometheus.pid")" 2>/dev/null || true
        rm -f "$local_dir/pids/prometheus.pid"
    fi
    for c in "${components[@]}"; do
        set -- $c
        pid_file=$local_dir/pids/$1.pid
        if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
            kill -TERM "$(cat "$pid_file")"
        fi
    done
    for c in "${components[@]}"; do
        set -- $c
        pid_file=$local_dir/pids/$1.pid
        for _ in $(seq 1 100); do
            [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null || break
            sleep 0.1
        done
        rm -f "$pid_file"
    done
    [ -n "$own_brokers" ] || "$root/deploy/local-broker.sh" stop
}

# One line per flow, from the audit store, once every flow has reported and the store has
# settled (not a fixed sleep): what came in, what went out where, with which content versions,
# how long from source event to side effect. Fails naming the flows that did not report.
report_flows() {
    local since timeout=${GRIDSYNC_REPORT_TIMEOUT_SECS:-180}
    since=$(cat "$demo_marker" 2>/dev/null || date -u -d '-1 day' +%Y-%m-%dT%H:%M:%SZ)
    echo "waiting for all eight flows to report (each consumer works at its own pace; at most $timeout s)..."
    echo "what each flow did since $since (gridsync report, from the audit store):"
    "$bin/gridsync" report --since "$since" --expect 1,2,3,4,5,6,7,8 --timeout-secs "$timeout" | sed 's/^/  /'
    local reported=${PIPESTATUS[0]}
    report_audit
    return "$reported"
}

# Flow 7 up close: one order's lineage from the 850 to the 820, and what is still open.
report_audit() {
    local lineage open
    lineage=$("$bin/gridsync" audit lineage 4500012345 --partner ACME 2>/dev/null || echo '{}')
    open=$("$bin/gridsync" audit open --limit 500 2>/dev/null || echo '{}')
    OPEN="$open" PAGE="$audit_page" python3 -c '
import json, os, sys
lineage, open_ = json.load(sys.stdin), json.loads(os.environ["OPEN"])
print("  flow 7  lineage of ACME order 4500012345 (%s events), as gridsync saw it:" % lineage.get("total", 0))
for e in lineage.get("events", {}).get("items", []):
    print("            %s  %s" % (e["event_type"] if not e.get("action") else "sent " + e["action"], e["summary"][:110]))
print("  flow 7  open: %s" % ", ".join("%d %s" % (len(v), k.replace("_", " ")) for k, v in open_.items()))
print("  flow 7  the audit page (log in with the token below): %s/?q=4500012345&partner=ACME" % os.environ["PAGE"])
' <<<"$lineage" || true
}

# Starts component $1 (metrics on port $2) in the background, unless it runs already.
start_component() {
    local pid_file=$local_dir/pids/$1.pid
    if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
        return
    fi
    if [ "$1" = amp-sim ]; then
        # An empty hub: `gridsync amplience setup` below prepares it.
        AMP_SIM_CLIENTS="$GRIDSYNC_AMPLIENCE_CLIENT_ID:$(cat "$GRIDSYNC_AMPLIENCE_CLIENT_SECRET_FILE")" \
            nohup "$bin/amp-sim" --listen "127.0.0.1:$2" >>"$local_dir/logs/$1.log" 2>&1 &
    elif [ "$1" = tg-sim ]; then
        mkdir -p "$GRIDSYNC_TG_MAILBOX_DIR/inbound" "$GRIDSYNC_TG_MAILBOX_DIR/outbound"
        TG_SIM_CONSUMERS="$GRIDSYNC_LENS_CLIENT_ID:$(cat "$GRIDSYNC_LENS_CLIENT_SECRET_FILE")" \
            nohup "$bin/tg-sim" --listen "127.0.0.1:$2" --outbound-dir "$GRIDSYNC_TG_MAILBOX_DIR/outbound" \
            --inbound-dir "$GRIDSYNC_TG_MAILBOX_DIR/inbound" >>"$local_dir/logs/$1.log" 2>&1 &
    elif [ "$1" = audit-consumer ]; then
        # Flow 7: every event and dead letter into the audit store; page and API on $audit_page.
        nohup "$bin/$1" --metrics-addr "127.0.0.1:$2" >>"$local_dir/logs/$1.log" 2>&1 &
    elif [ "$1" = lag-exporter ]; then
        # Every group's lag as the broker has it, for Prometheus (gridsync_group_lag).
        nohup "$bin/gridsync" groups lag --serve --metrics-addr "127.0.0.1:$2" >>"$local_dir/logs/$1.log" 2>&1 &
    elif [[ "$1" == *-consumer ]]; then
        # Flows 1-6, 8 into Amplience (GRIDSYNC_AMPLIENCE_* above); billing writes 820/812s,
        # distribution partner-content packages, to the mailbox above.
        nohup "$bin/$1" --metrics-addr "127.0.0.1:$2" --store-url "sqlite://$local_dir/${1%-consumer}.db" \
            >>"$local_dir/logs/$1.log" 2>&1 &
    else
        nohup "$bin/$1" --metrics-addr "127.0.0.1:$2" >>"$local_dir/logs/$1.log" 2>&1 &
    fi
    echo $! >"$pid_file"
}

# Waits until component $1 (port $2) is ready; fails saying why it is not.
await_ready() {
    for _ in $(seq 1 300); do
        curl -fs "http://127.0.0.1:$2/readyz" >/dev/null 2>&1 && return
        sleep 0.1
    done
    echo "$1 is not ready: $(curl -s "http://127.0.0.1:$2/readyz" || echo 'it does not answer'); see $local_dir/logs/$1.log" >&2
    exit 1
}

# The Amplience hub, set up as a user sets up theirs: gridsync's content types, the webhook to
# amp-producer, example templates where none are; then checked as each consumer checks it.
setup_amplience() {
    echo "setting up the Amplience hub (gridsync amplience setup --with-example-templates):"
    "$bin/gridsync" amplience setup --with-example-templates | tail -n 1 | sed 's/^/  /'
    "$bin/gridsync" amplience check | tail -n 1 | sed 's/^/  /'
}

start() {
    local observe=${1:-}
    echo "[1/5] the broker"
    if [ -n "$own_brokers" ]; then
        echo "using the cluster at $GRIDSYNC_BROKERS"
    else
        "$root/deploy/local-broker.sh" start
    fi
    echo "[2/5] building gridsync"
    if [ "${GRIDSYNC_SKIP_BUILD:-}" = 1 ]; then
        echo "skipped (GRIDSYNC_SKIP_BUILD=1): using the binaries in $bin"
    else
        if [ -x "$bin/tg-producer" ]; then
            echo "rebuilding what changed (seconds, unless much did)..."
        else
            echo "the first build compiles ~450 crates: about 10 minutes on 2 cores, once; cargo counts them below..."
        fi
        "$root/deploy/build-deps.sh"
        (cd "$root" && cargo build --workspace --bins --locked)
    fi
    load_components
    echo "[3/5] topics of the catalog"
    "$bin/gridsync" topics apply
    echo "[4/5] starting the producers, consumers and both simulators"
    mkdir -p "$local_dir/logs" "$local_dir/pids" "$local_dir/secrets"
    for secret in "$GRIDSYNC_AMPLIENCE_CLIENT_SECRET_FILE" "$GRIDSYNC_AMP_WEBHOOK_SECRET_FILE" \
        "$GRIDSYNC_LENS_CLIENT_SECRET_FILE"; do
        [ -s "$secret" ] || (umask 077 && head -c 24 /dev/urandom | base64 >"$secret")
    done
    if [ ! -s "$audit_token_file" ]; then
        (umask 077 && "$bin/gridsync" audit token --name quick-start 2>/dev/null >"$audit_token_file")
    fi
    # The simulators first: the hub is set up (as a user sets theirs up) before the consumers,
    # which check at start that it has what their flows need.
    for c in "${components[@]:0:2}"; do start_component $c; done
    for c in "${components[@]:0:2}"; do await_ready $c; done
    setup_amplience
    for c in "${components[@]:2}"; do start_component $c; done
    for c in "${components[@]:2}"; do await_ready $c; done
    [ "$observe" != --observe ] || start_prometheus
    echo "[5/5] the demo"
    local report_failed=0
    if [ -f "$demo_marker" ]; then
        echo "fed on $(cat "$demo_marker") and kept (broker, stores, mailboxes): not fed again"
        echo "(to start over: deploy/run-local.sh stop; rm -rf $local_dir)"
    else
        date -u +%Y-%m-%dT%H:%M:%SZ >"$demo_marker"
        feed_demo
    fi
    report_flows || report_failed=1
    echo
    echo "gridsync is running on $GRIDSYNC_BROKERS:"
    status
    echo
    echo "Where to look next:"
    echo "  the audit view (flow 7)   $audit_page/   (log in with the token in $audit_token_file: $(cat "$audit_token_file"))"
    echo "                            curl -H \"Authorization: Bearer \$(cat $audit_token_file)\" $audit_page/api/open"
    echo "  metrics of each binary    the addresses above, e.g. curl -s http://127.0.0.1:$(port 9471)/metrics | grep gridsync_flow_"
    echo "  logs                      $local_dir/logs/"
    if [ -f "$local_dir/pids/prometheus.pid" ]; then
        echo "  Prometheus, alert rules   http://127.0.0.1:$prometheus_port/alerts"
    else
        echo "  Prometheus, alert rules   deploy/run-local.sh --observe   (or docker compose up: Prometheus and Grafana)"
    fi
    echo "  Grafana dashboard         docker compose up, then http://localhost:3000 (deploy/grafana/dashboards/gridsync.json)"
    echo "  the flows, again          deploy/run-local.sh report"
    echo "  each component's state    $bin/gridsync status   (partitions, what holds a paused one, the last error)"
    echo "  lag per group, topics     $bin/gridsync groups lag; $bin/gridsync topics describe"
    echo "  dead letters              $bin/gridsync dlq show notifications   (records a flow could not use, with the reason)"
    echo "  one transaction           $bin/gridsync audit lineage INV-88001   (or: partner ACME, content <id>, open, dead-letters)"
    echo "  what Amplience holds      curl -s '$amp_sim/__sim/items?prefix=gridsync/'"
    echo "  the partner mailbox       ls $GRIDSYNC_TG_MAILBOX_DIR/processed $GRIDSYNC_TG_MAILBOX_DIR/quarantine $GRIDSYNC_TG_MAILBOX_DIR/outbound/.picked-up"
    echo "  replays make nothing twice: deploy/run-local.sh stop; $bin/gridsync replay billing --to-earliest --dry-run"
    echo "Stop: deploy/run-local.sh stop"
    return "$report_failed"
}

# The demo: sample events of every type, partner files (X12 and EDIFACT) through the Trading
# Grid mailbox, a broken file and a failed delivery (flow 8), and people at work in Amplience.
feed_demo() {
    "$bin/gridsync" demo --count 3 | tail -n 1
    mkdir -p "$GRIDSYNC_TG_MAILBOX_DIR/inbound"
    for f in "$root"/connectors/edi/tests/fixtures/*.edi; do
        cp "$f" "$GRIDSYNC_TG_MAILBOX_DIR/inbound/$(date +%s%N)-$(basename "$f")"
    done
    echo "dropped $(ls "$root"/connectors/edi/tests/fixtures/*.edi | wc -l) sample EDI files into $GRIDSYNC_TG_MAILBOX_DIR/inbound"
    printf 'ISA*00*not an interchange~\n' >"$GRIDSYNC_TG_MAILBOX_DIR/inbound/$(date +%s%N)-broken.edi"
    now=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
    curl -fs -X POST "$tg_sim/__sim/transactions" -H 'content-type: application/json' -d "[{
        \"transactionid\": \"DEMO-ASN-$(date +%s)\", \"editype\": \"856\", \"envelopetype\": \"ISA\",
        \"senderaddress\": \"GLOBEX\", \"receiveraddress\": \"GRIDSYNC\", \"senderreference\": \"$(date +%s)\",
        \"status\": \"F\", \"statusdate\": \"$now\", \"errorcode\": \"E42\",
        \"externalerrormessage\": \"partner mailbox unreachable\", \"contentkeys\": []}]"
    echo "dropped a broken file and reported a failed delivery in tg-sim's Lens (flow 8)"
    # People at work in Amplience: a payment confirmed, a dispute resolved, terms approved and published.
    curl -fs -X POST "$amp_sim/__sim/demo" >/dev/null
    echo "played the Amplience demo in amp-sim: 4 signed webhooks on their way to amp-producer"
}

case ${1:-start} in
    start) start "${2:-}" ;;
    --observe) start --observe ;;
    report) report_flows ;;
    stop) stop ;;
    status) status ;;
    *) sed -n '2,16p' "$0" >&2; exit 2 ;;
esac
