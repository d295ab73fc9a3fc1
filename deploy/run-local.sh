#!/usr/bin/env bash
# Runs the whole gridsync pipeline on this machine on embedded defaults: the local broker
# (installed if needed), the topics of the catalog, every producer and consumer binary, and
# a few demo events so there is something to see.
#
#   deploy/run-local.sh          start everything (returns; the binaries keep running)
#   deploy/run-local.sh status   what is running, and where its metrics and logs are
#   deploy/run-local.sh stop     stop the binaries (SIGTERM: they finish, commit and exit) and the broker
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
local_dir=${GRIDSYNC_LOCAL_DIR:-$root/.local}
# A cluster of your own (GRIDSYNC_BROKERS) is used as it is; otherwise the local Apache Kafka is started.
own_brokers=${GRIDSYNC_BROKERS:-}
export GRIDSYNC_BROKERS=${GRIDSYNC_BROKERS:-127.0.0.1:${GRIDSYNC_BROKER_PORT:-9092}}
export PATH="$HOME/.cargo/bin:$PATH"
bin=$root/target/debug
# The Trading Grid inbound mailbox: drop EDI files into $GRIDSYNC_TG_MAILBOX_DIR/inbound.
export GRIDSYNC_TG_MAILBOX_DIR=${GRIDSYNC_TG_MAILBOX_DIR:-$local_dir/tg-mailbox}
# Acknowledgements (997/CONTRL/TA1) go to $GRIDSYNC_TG_MAILBOX_DIR/outbound, numbered in this store.
export GRIDSYNC_TG_STORE_URL=${GRIDSYNC_TG_STORE_URL:-sqlite://$local_dir/tg-producer.db}

# Amplience is the local simulator (amp-sim) unless these point elsewhere. Its webhooks go
# to amp-producer; the secrets are generated on first start into .local/secrets.
amp_sim=http://127.0.0.1:9480
export GRIDSYNC_AMPLIENCE_API_URL=${GRIDSYNC_AMPLIENCE_API_URL:-$amp_sim/v2/content}
export GRIDSYNC_AMPLIENCE_TOKEN_URL=${GRIDSYNC_AMPLIENCE_TOKEN_URL:-$amp_sim/oauth/token}
export GRIDSYNC_AMPLIENCE_DELIVERY_URL=${GRIDSYNC_AMPLIENCE_DELIVERY_URL:-$amp_sim}
# Media links (package attachments) from amp-sim's media CDN instead of https://{defaultHost}.
media_path='{kind}/{endpoint}/{name}'
export GRIDSYNC_AMPLIENCE_MEDIA_URL=${GRIDSYNC_AMPLIENCE_MEDIA_URL:-$amp_sim/$media_path}
export GRIDSYNC_AMPLIENCE_HUB_ID=${GRIDSYNC_AMPLIENCE_HUB_ID:-5f0000000000000000000001}
export GRIDSYNC_AMPLIENCE_CLIENT_ID=${GRIDSYNC_AMPLIENCE_CLIENT_ID:-gridsync}
export GRIDSYNC_AMPLIENCE_CLIENT_SECRET_FILE=${GRIDSYNC_AMPLIENCE_CLIENT_SECRET_FILE:-$local_dir/secrets/amplience-client-secret}
export GRIDSYNC_AMP_WEBHOOK_SECRET_FILE=${GRIDSYNC_AMP_WEBHOOK_SECRET_FILE:-$local_dir/secrets/amplience-webhook-secret}
export GRIDSYNC_AMP_STORE_URL=${GRIDSYNC_AMP_STORE_URL:-sqlite://$local_dir/amp-producer.db}

# Trading Grid is the local simulator (tg-sim): Lens on 9490, and a mailbox partner that picks
# up what gridsync writes to the outbound mailbox and answers with acknowledgements.
tg_sim=http://127.0.0.1:9490
export GRIDSYNC_LENS_URL=${GRIDSYNC_LENS_URL:-$tg_sim}
export GRIDSYNC_LENS_CLIENT_ID=${GRIDSYNC_LENS_CLIENT_ID:-gridsync}
export GRIDSYNC_LENS_CLIENT_SECRET_FILE=${GRIDSYNC_LENS_CLIENT_SECRET_FILE:-$local_dir/secrets/lens-client-secret}
export GRIDSYNC_LENS_POLL_MS=${GRIDSYNC_LENS_POLL_MS:-2000}

# The audit store (flow 7) and where its page and JSON API listen.
export GRIDSYNC_AUDIT_STORE_URL=${GRIDSYNC_AUDIT_STORE_URL:-sqlite://$local_dir/audit.db}
export GRIDSYNC_AUDIT_LISTEN=${GRIDSYNC_AUDIT_LISTEN:-127.0.0.1:9476}
audit_page=http://$GRIDSYNC_AUDIT_LISTEN

# name and metrics port of every long-running binary
components=(
    "amp-sim 9480"
    "tg-sim 9490"
    "tg-producer 9464"
    "amp-producer 9465"
    "notifications-consumer 9471"
    "billing-consumer 9472"
    "exceptions-consumer 9473"
    "distribution-consumer 9474"
    "audit-consumer 9475"
)

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
}

stop() {
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

# Waits until the flow consumers have caught up (no lag, nothing new for two seconds), then
# prints what each flow created in Amplience (with the template versions it used) and sent to
# Trading Grid.
report_flows() {
    local items="" last="" same=0
    for _ in $(seq 1 120); do
        lag=$(for port in 9471 9472 9473 9474 9475; do curl -fs "http://127.0.0.1:$port/metrics"; done |
            awk '/^gridsync_consumer_lag\{/ {s += $2} END {print s + 0}')
        items=$(curl -fs "$amp_sim/__sim/items?prefix=gridsync/" || true)
        if [ "$lag" = 0 ] && [ -n "$items" ] && [ "$items" = "$last" ]; then
            same=$((same + 1))
            [ "$same" -ge 2 ] && break
        else
            same=0
        fi
        last=$items
        sleep 1
    done
    echo "what the flows did, as amp-sim and the outbound mailbox hold it:"
    reminders=$(curl -fs http://127.0.0.1:9472/metrics | awk '/^gridsync_flow_timers_pending\{.*payment-reminder/ {s += $2} END {print s + 0}')
    printf '%s' "$items" | REMINDERS="$reminders" OUTBOUND="$GRIDSYNC_TG_MAILBOX_DIR/outbound" python3 -c '
import collections, json, os, sys
items = json.load(sys.stdin).get("items", [])
flows = {"order-confirmation": 1, "customer-notification": 1, "delivery-content": 3, "shipment-notification": 3,
         "delivery-notification": 3, "post-purchase-message": 3, "order-response-notification": 6, "shipment-released": 6,
         "document-exception-notification": 6, "billing-communication": 2, "payment-reminder": 2,
         "invoice-rejected": 6, "exception-task": 8, "exception-customer-notice": 8}
seen = collections.defaultdict(list)
for entry in items:
    body = entry["item"]["body"]
    if "entries" in body:
        print("  flow 1  campaign-suppression list: %d customers suppressed (for 30 days after their order)" % len(body["entries"]))
    elif "invoices" in body:
        invoices = ", ".join("%s %s" % (n, i.get("status")) for n, i in sorted(body["invoices"].items()))
        due = ", ".join("%s %s" % (a, c) for c, a in sorted(body.get("amountDue", {}).items())) or "nothing"
        print("  flow 2  account status %-14s due %s; invoices: %s" % (body["tradingPartnerId"], due, invoices))
    elif body.get("action"):
        seen[body["action"]].append((body, entry.get("workflowState")))
for action, found in sorted(seen.items(), key=lambda kv: (flows.get(kv[0], 9), kv[0])):
    versions = sorted({"%s v%s" % (b["gridsync"]["template"]["key"], b["gridsync"]["template"]["version"]) for b, _ in found})
    states = collections.Counter(s for _, s in found if s)
    shown = " (%s)" % ", ".join("%d %s" % (n, s) for s, n in sorted(states.items())) if states else ""
    print("  flow %s  %-32s %3d items%s, from %s" % (flows.get(action, "?"), action, len(found), shown, ", ".join(versions)))
print("  flow 2  payment reminders scheduled, waiting for their day: %s" % os.environ.get("REMINDERS", "?"))
picked = os.path.join(os.environ["OUTBOUND"], ".picked-up")
sent = sorted(f for f in (os.listdir(picked) if os.path.isdir(picked) else []) if not f.endswith(".sha256") and
              f.split("_")[1:2] and f.split("_")[1] in ("820", "812", "REMADV", "CREADV", "DEBADV"))
print("  flow 2  to Trading Grid, picked up by the partner: %s" % (", ".join(sent) or "nothing yet"))
for entry in items:
    body = entry["item"]["body"]
    if "partners" in body and "contentItemId" in body:
        states = ", ".join("%s v%s %s%s" % (p, s.get("version"), s.get("state"), " (%s)" % s["reason"] if s.get("reason") else "")
                           for p, s in sorted(body["partners"].items()))
        flow = "4" if body.get("kind") in ("ONBOARDING_PACK", "COMPLIANCE_INSTRUCTIONS", "PROCESS_GUIDE") else "5"
        print("  flow %s  %s \"%s\" (%s) to partners: %s" % (flow, body.get("kind", "content"), body.get("title", ""),
              body["contentItemId"], states or "none yet"))
import hashlib, zipfile
for name in sorted(f for f in (os.listdir(picked) if os.path.isdir(picked) else []) if "_PKG_" in f and f.endswith(".zip")):
    with zipfile.ZipFile(os.path.join(picked, name)) as package:
        manifest = json.loads(package.read("manifest.json"))
        parts = manifest["parts"]
        whole = all(hashlib.sha256(package.read(p["name"])).hexdigest() == p["sha256"] for p in parts)
    shown = ", ".join("%s (%d bytes)" % (p["name"], p["bytes"]) for p in parts)
    print("  flow 4/5  package %s: %s; checksums %s" % (name, shown, "match the manifest" if whole else "DO NOT MATCH"))
' || echo "  (python3 is needed to summarise; the items: curl -s '$amp_sim/__sim/items?prefix=gridsync/')"
    report_audit
}

# Flow 7: what the audit store holds, one order's lineage from the 850 to the 820, what is open.
report_audit() {
    local counts lineage open
    counts=$("$bin/gridsync" audit counts 2>/dev/null || echo '{}')
    lineage=$("$bin/gridsync" audit lineage 4500012345 --partner ACME 2>/dev/null || echo '{}')
    open=$("$bin/gridsync" audit open --limit 500 2>/dev/null || echo '{}')
    COUNTS="$counts" OPEN="$open" PAGE="$audit_page" python3 -c '
import json, os, sys
counts, lineage, open_ = json.loads(os.environ["COUNTS"]), json.load(sys.stdin), json.loads(os.environ["OPEN"])
print("  flow 7  audit store: %s events, %s dead letters recorded" % (counts.get("events", "?"), counts.get("dead_letters", "?")))
print("  flow 7  lineage of ACME order 4500012345 (%s events), as gridsync saw it:" % lineage.get("total", 0))
for e in lineage.get("events", {}).get("items", []):
    print("            %s  %s" % (e["event_type"] if not e.get("action") else "sent " + e["action"], e["summary"][:110]))
print("  flow 7  open: %s" % ", ".join("%d %s" % (len(v), k.replace("_", " ")) for k, v in open_.items()))
print("  flow 7  the audit page: %s/?q=4500012345&partner=ACME" % os.environ["PAGE"])
' <<<"$lineage" || true
}

start() {
    [ -n "$own_brokers" ] || "$root/deploy/local-broker.sh" start
    echo "building the workspace..." >&2
    (cd "$root" && cargo build --workspace --bins --locked --quiet)
    "$bin/gridsync" topics apply
    mkdir -p "$local_dir/logs" "$local_dir/pids" "$local_dir/secrets"
    for secret in "$GRIDSYNC_AMPLIENCE_CLIENT_SECRET_FILE" "$GRIDSYNC_AMP_WEBHOOK_SECRET_FILE" \
        "$GRIDSYNC_LENS_CLIENT_SECRET_FILE"; do
        [ -s "$secret" ] || (umask 077 && head -c 24 /dev/urandom | base64 >"$secret")
    done
    for c in "${components[@]}"; do
        set -- $c
        pid_file=$local_dir/pids/$1.pid
        if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
            continue
        fi
        if [ "$1" = amp-sim ]; then
            AMP_SIM_WEBHOOK_SECRET=$(cat "$GRIDSYNC_AMP_WEBHOOK_SECRET_FILE") \
            AMP_SIM_CLIENTS="$GRIDSYNC_AMPLIENCE_CLIENT_ID:$(cat "$GRIDSYNC_AMPLIENCE_CLIENT_SECRET_FILE")" \
                nohup "$bin/amp-sim" --listen "127.0.0.1:$2" --webhook-url http://127.0.0.1:9466/webhooks/amplience \
                --seed-templates \
                >>"$local_dir/logs/$1.log" 2>&1 &
        elif [ "$1" = tg-sim ]; then
            mkdir -p "$GRIDSYNC_TG_MAILBOX_DIR/inbound" "$GRIDSYNC_TG_MAILBOX_DIR/outbound"
            TG_SIM_CONSUMERS="$GRIDSYNC_LENS_CLIENT_ID:$(cat "$GRIDSYNC_LENS_CLIENT_SECRET_FILE")" \
                nohup "$bin/tg-sim" --listen "127.0.0.1:$2" --outbound-dir "$GRIDSYNC_TG_MAILBOX_DIR/outbound" \
                --inbound-dir "$GRIDSYNC_TG_MAILBOX_DIR/inbound" >>"$local_dir/logs/$1.log" 2>&1 &
        elif [ "$1" = audit-consumer ]; then
            # Flow 7: every event and dead letter into the audit store; page and API on $audit_page.
            nohup "$bin/$1" --metrics-addr "127.0.0.1:$2" >>"$local_dir/logs/$1.log" 2>&1 &
        elif [[ "$1" == *-consumer ]]; then
            # Flows 1-6, 8 into Amplience (GRIDSYNC_AMPLIENCE_* above), templates seeded in amp-sim;
            # billing writes 820/812s, distribution partner-content packages, to the mailbox above.
            nohup "$bin/$1" --metrics-addr "127.0.0.1:$2" --store-url "sqlite://$local_dir/${1%-consumer}.db" \
                --partners "${GRIDSYNC_PARTNERS_FILE:-$root/deploy/partners.toml}" >>"$local_dir/logs/$1.log" 2>&1 &
        else
            nohup "$bin/$1" --metrics-addr "127.0.0.1:$2" >>"$local_dir/logs/$1.log" 2>&1 &
        fi
        echo $! >"$pid_file"
    done
    for c in "${components[@]}"; do
        set -- $c
        for _ in $(seq 1 300); do
            curl -fs "http://127.0.0.1:$2/readyz" >/dev/null 2>&1 && break
            sleep 0.1
        done
        curl -fs "http://127.0.0.1:$2/readyz" >/dev/null || { echo "$1 is not ready; see $local_dir/logs/$1.log" >&2; exit 1; }
    done
    "$bin/gridsync" demo --count 3 | tail -n 1
    # Sample partner files (X12 and EDIFACT) through the Trading Grid mailbox.
    mkdir -p "$GRIDSYNC_TG_MAILBOX_DIR/inbound"
    for f in "$root"/connectors/edi/tests/fixtures/*.edi; do
        cp "$f" "$GRIDSYNC_TG_MAILBOX_DIR/inbound/$(date +%s%N)-$(basename "$f")"
    done
    echo "dropped $(ls "$root"/connectors/edi/tests/fixtures/*.edi | wc -l) sample EDI files into $GRIDSYNC_TG_MAILBOX_DIR/inbound"
    # Flow 8: a file no parser can read, and a ship notice Trading Grid could not deliver.
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
    report_flows
    echo
    echo "gridsync is running on $GRIDSYNC_BROKERS:"
    status
    echo
    echo "The audit view (flow 7): $audit_page/   (search a PO, invoice, partner file or content item)"
    echo "Try: curl -s '$amp_sim/__sim/items?prefix=gridsync/'   (what the flows created in Amplience)"
    echo "     curl -s http://127.0.0.1:9471/metrics | grep gridsync_flow_   (side effects, latency, ledger hits)"
    echo "     $bin/gridsync dlq show notifications   (records a flow could not use, with the reason)"
    echo "     $bin/gridsync audit lineage INV-88001   (or: partner ACME, content <id>, open, dead-letters)"
    echo "     curl -s '$audit_page/api/lineage?ref=4500012345'   (the same as JSON over HTTP)"
    echo "     deploy/run-local.sh stop; $bin/gridsync replay billing --to-earliest --dry-run   (replays make nothing twice)"
    echo "     ls $GRIDSYNC_TG_MAILBOX_DIR/processed $GRIDSYNC_TG_MAILBOX_DIR/quarantine"
    echo "     ls $GRIDSYNC_TG_MAILBOX_DIR/outbound/.picked-up   (our 997/CONTRL/TA1, picked up by tg-sim's partner)"
    echo "     curl -s $tg_sim/__sim/transactions          (what Lens reports; tg-producer polls it)"
    echo "     $bin/gridsync edi inspect <file>       (what an EDI file maps to)"
    echo "     curl -s http://127.0.0.1:9465/metrics | grep amp_webhooks_total"
    echo "     $bin/gridsync dlq show billing        (dead letters; amp-producer: refused webhooks)"
    echo "Stop: deploy/run-local.sh stop"
}

case ${1:-start} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) sed -n '2,9p' "$0" >&2; exit 2 ;;
esac
