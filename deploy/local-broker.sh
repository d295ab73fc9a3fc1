#!/usr/bin/env bash
# The local broker: Apache Kafka (KRaft, one node that is both broker and controller) on 127.0.0.1,
# fetched from Maven Central with Maven, or taken from an existing distribution ($KAFKA_HOME).
#
#   deploy/local-broker.sh install          fetch Kafka's jars into .local/kafka (once, ~30 s; then cached)
#   deploy/local-broker.sh start            start it in the background, data and log under .local
#   deploy/local-broker.sh stop | status
#   deploy/local-broker.sh serve DIR PORT CONTROLLER_PORT
#                                           run one in the foreground with its data in DIR (formatted
#                                           on first use): what the test harness starts, one per test binary
#   deploy/local-broker.sh serve-secure DIR SASL_PORT TLS_PORT CONTROLLER_PORT
#                                           the same, as a production cluster is: a SASL_SSL listener
#                                           (SCRAM-SHA-512) and an mTLS listener, certificates made
#                                           for the run under DIR/tls, ACLs enforced (KRaft's
#                                           StandardAuthorizer; only User:broker and User:admin are
#                                           super users). GRIDSYNC_SCRAM_USERS="name=password ..."
#                                           makes SASL users (admin among them), GRIDSYNC_TLS_CLIENTS=
#                                           "name ..." client certificates DIR/tls/<name>.crt/.key
#                                           (principal User:<name>), beside DIR/tls/ca.pem.
#                                           GRIDSYNC_OAUTH_PORT and GRIDSYNC_OAUTH_JWKS_URL add an
#                                           OAUTHBEARER listener (SASL_SSL) that validates JWTs
#                                           against that JWKS, audience "kafka" (principal User:<sub>)
#   deploy/local-broker.sh classpath        print the classpath it runs with
#
# Environment: GRIDSYNC_BROKER_PORT (9092), GRIDSYNC_CONTROLLER_PORT (9093), GRIDSYNC_LOCAL_DIR
# (.local in the checkout), KAFKA_HOME (use that distribution's libs/ instead of fetching),
# KAFKA_HEAP_OPTS (-Xms256m -Xmx1g: fits a 2-core, 24 GiB machine beside the tests).
# Needs Java 17+ and, unless KAFKA_HOME is set, Maven.
set -euo pipefail

KAFKA_VERSION=4.1.1
root=$(cd "$(dirname "$0")/.." && pwd)
local_dir=${GRIDSYNC_LOCAL_DIR:-$root/.local}
port=${GRIDSYNC_BROKER_PORT:-9092}
controller_port=${GRIDSYNC_CONTROLLER_PORT:-9093}
# The jars live outside the data folders so that every checkout's tests and the local run share them.
kafka_libs=${GRIDSYNC_KAFKA_LIBS:-$root/.local/kafka-$KAFKA_VERSION/libs}
pid_file=$local_dir/kafka.pid
heap=${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}

libs_dir() {
    if [ -n "${KAFKA_HOME:-}" ]; then echo "$KAFKA_HOME/libs"; else echo "$kafka_libs"; fi
}

installed() {
    [ -f "$(libs_dir)/kafka_2.13-$KAFKA_VERSION.jar" ] || { [ -n "${KAFKA_HOME:-}" ] && ls "$KAFKA_HOME"/libs/kafka_2.13-*.jar >/dev/null 2>&1; }
}

install() {
    if installed; then
        return
    fi
    command -v java >/dev/null || { echo "Apache Kafka needs Java 17 or later on PATH (or a running Kafka: set GRIDSYNC_BROKERS)" >&2; exit 1; }
    command -v mvn >/dev/null || { echo "fetching Apache Kafka needs Maven (or set KAFKA_HOME to a Kafka distribution)" >&2; exit 1; }
    echo "fetching Apache Kafka $KAFKA_VERSION from Maven Central into $kafka_libs (about 45 MB, once)..." >&2
    local pom_dir
    pom_dir=$(mktemp -d)
    # Kafka's own jars with their runtime dependencies; slf4j-simple gives the broker a logger
    # without a log4j2 configuration file (Kafka's pom only brings slf4j's API).
    cat >"$pom_dir/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>gridsync.local</groupId>
  <artifactId>local-kafka</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>2.0.17</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-simple</artifactId><version>2.0.17</version></dependency>
  </dependencies>
</project>
EOF
    mkdir -p "$kafka_libs.partial"
    mvn -q -B -f "$pom_dir/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$kafka_libs.partial" >&2
    rm -rf "$pom_dir" "$kafka_libs"
    mv "$kafka_libs.partial" "$kafka_libs" # whole or not at all: a broken fetch is fetched again
    echo "Apache Kafka $KAFKA_VERSION installed in $kafka_libs" >&2
}

# Runs a Java main class of Kafka's with the broker's heap and logging: run_java CLASS ARGS...
run_java() {
    local -a heap_opts
    read -r -a heap_opts <<<"$heap"
    # Kafka fetches a JWKS only from URLs it is told it may (its OAUTHBEARER listener).
    local -a allowed=()
    [ -z "${GRIDSYNC_OAUTH_JWKS_URL:-}" ] || allowed=("-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls=$GRIDSYNC_OAUTH_JWKS_URL")
    ${exec_java:+exec} java "${heap_opts[@]}" "${allowed[@]}" -XX:+UseG1GC -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
        -Dorg.slf4j.simpleLogger.showDateTime=true -cp "$(libs_dir)/*" "$@"
}

# The single-node KRaft configuration for data folder $1, client port $2, controller port $3.
write_config() {
    cat >"$1/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$3
listeners=PLAINTEXT://127.0.0.1:$2,CONTROLLER://127.0.0.1:$3
advertised.listeners=PLAINTEXT://127.0.0.1:$2
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$1/data
# one node: every internal topic has one replica
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# a consumer group forms at once instead of after 3 s (tests and the local run start groups often)
group.initial.rebalance.delay.ms=0
num.partitions=1
# as in production (and docker-compose): topics come from "gridsync topics apply", never from a typo
auto.create.topics.enable=false
EOF
}

# Certificates for a secured broker in $1/tls: a CA of the run's own, the broker's (for
# 127.0.0.1 and localhost, in a PKCS#12 keystore with password $2) and one per
# client named in GRIDSYNC_TLS_CLIENTS (CN=<name>, which the broker maps to User:<name>).
make_certificates() {
    local tls=$1/tls password=$2
    mkdir -p "$tls"
    [ -f "$tls/ca.pem" ] && return
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
    openssl req -x509 "${ec[@]}" -nodes -keyout "$tls/ca.key" -out "$tls/ca.pem" -days 7 \
        -subj "/CN=gridsync-test-ca" 2>/dev/null
    sign() { # name, subject alternative names (optional)
        openssl req "${ec[@]}" -nodes -keyout "$tls/$1.key" -out "$tls/$1.csr" -subj "/CN=$1" 2>/dev/null
        local ext=$tls/$1.ext
        echo "basicConstraints=CA:FALSE" >"$ext"
        [ -z "${2:-}" ] || echo "subjectAltName=$2" >>"$ext"
        openssl x509 -req -in "$tls/$1.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
            -out "$tls/$1.crt" -days 7 -extfile "$ext" 2>/dev/null
        rm -f "$tls/$1.csr" "$ext"
    }
    sign broker "IP:127.0.0.1,DNS:localhost"
    openssl pkcs12 -export -in "$tls/broker.crt" -inkey "$tls/broker.key" -certfile "$tls/ca.pem" -name broker \
        -passout "pass:$password" -out "$tls/broker.p12"
    for client in ${GRIDSYNC_TLS_CLIENTS:-}; do
        sign "$client"
    done
    chmod 600 "$tls"/*.key
}

# The secured broker's configuration (see serve-secure): DIR, SASL port, TLS port, controller port.
write_secure_config() {
    local dir=$1 password
    password=$(cat "$dir/tls/keystore-password")
    write_config "$dir" "$2" "$4"
    # Everything below replaces the plain listeners of write_config.
    sed -i '/^listeners=/d; /^advertised.listeners=/d; /^listener.security.protocol.map=/d; /^inter.broker.listener.name=/d' "$dir/server.properties"
    cat >>"$dir/server.properties" <<EOF
listeners=SASL_SSL://127.0.0.1:$2,MTLS://127.0.0.1:$3,CONTROLLER://127.0.0.1:$4
advertised.listeners=SASL_SSL://127.0.0.1:$2,MTLS://127.0.0.1:$3
listener.security.protocol.map=SASL_SSL:SASL_SSL,MTLS:SSL,CONTROLLER:SSL
# The broker talks to itself (and its controller) over TLS with its own certificate: User:broker.
inter.broker.listener.name=MTLS
ssl.keystore.type=PKCS12
ssl.keystore.location=$dir/tls/broker.p12
ssl.keystore.password=$password
ssl.key.password=$password
ssl.truststore.type=PEM
ssl.truststore.location=$dir/tls/ca.pem
ssl.client.auth=required
listener.name.sasl_ssl.ssl.client.auth=none
ssl.principal.mapping.rules=RULE:^CN=([^,]+)\$/\$1/,DEFAULT
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:broker;User:admin
allow.everyone.if.no.acl.found=false
EOF
    if [ -n "${GRIDSYNC_OAUTH_PORT:-}" ]; then
        sed -i "s|^listeners=.*|&,OAUTH://127.0.0.1:$GRIDSYNC_OAUTH_PORT|; s|^advertised.listeners=.*|&,OAUTH://127.0.0.1:$GRIDSYNC_OAUTH_PORT|; s|^listener.security.protocol.map=.*|&,OAUTH:SASL_SSL|" "$dir/server.properties"
        cat >>"$dir/server.properties" <<EOF
listener.name.oauth.ssl.client.auth=none
listener.name.oauth.sasl.enabled.mechanisms=OAUTHBEARER
listener.name.oauth.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;
listener.name.oauth.oauthbearer.sasl.server.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler
sasl.oauthbearer.jwks.endpoint.url=$GRIDSYNC_OAUTH_JWKS_URL
sasl.oauthbearer.expected.audience=kafka
EOF
    fi
}

# A secured broker in the foreground (see the usage above); formats DIR on first use with the
# SCRAM users of GRIDSYNC_SCRAM_USERS.
serve_secure() {
    local dir=$1
    install
    mkdir -p "$dir/tls"
    [ -s "$dir/tls/keystore-password" ] || (umask 077 && head -c 18 /dev/urandom | base64 >"$dir/tls/keystore-password")
    make_certificates "$dir" "$(cat "$dir/tls/keystore-password")"
    write_secure_config "$dir" "$2" "$3" "$4"
    if [ ! -f "$dir/data/meta.properties" ]; then
        local cluster_id
        local -a users=()
        for user in ${GRIDSYNC_SCRAM_USERS:-}; do
            users+=(--add-scram "SCRAM-SHA-512=[name=${user%%=*},password=${user#*=}]")
        done
        cluster_id=$(run_java kafka.tools.StorageTool random-uuid)
        run_java kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" "${users[@]}" >/dev/null
    fi
    exec_java=1 run_java kafka.Kafka "$dir/server.properties"
}

# Runs a broker in the foreground (exec: the caller's pid is the JVM's). Formats DIR on first use;
# a restart on the same DIR keeps its records, offsets and groups.
serve() {
    local dir=$1 client_port=$2 ctl_port=$3
    install
    mkdir -p "$dir"
    write_config "$dir" "$client_port" "$ctl_port"
    if [ ! -f "$dir/data/meta.properties" ]; then
        local cluster_id
        cluster_id=$(run_java kafka.tools.StorageTool random-uuid)
        run_java kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" >/dev/null
    fi
    exec_java=1 run_java kafka.Kafka "$dir/server.properties"
}

running() {
    [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

# Ready means the broker answers a Kafka request, not just that its port is open.
wait_ready() {
    for _ in $(seq 1 300); do
        if ! running; then
            echo "Kafka exited during start; see $local_dir/kafka.log" >&2
            return 1
        fi
        if api_versions_answers; then
            return 0
        fi
        sleep 0.5
    done
    echo "Kafka did not answer on 127.0.0.1:$port; see $local_dir/kafka.log" >&2
    return 1
}

# A Kafka ApiVersions request (v0) over bash's /dev/tcp: a broker that has finished starting answers
# it; an open port of a broker still starting does not.
api_versions_answers() {
    { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return 1
    # length 14, api key 18 (ApiVersions), version 0, correlation id 1, client id "gs"
    printf '\x00\x00\x00\x0c\x00\x12\x00\x00\x00\x00\x00\x01\x00\x02gs' >&3
    local answer
    answer=$(timeout 2 head -c 10 <&3 | od -An -tx1 | tr -d ' \n') || true
    exec 3>&-
    # correlation id 1 and error code 0
    [ "${answer:8:8}" = "00000001" ] && [ "${answer:16:4}" = "0000" ]
}

start() {
    install
    if running; then
        echo "Kafka already running (pid $(cat "$pid_file")) on 127.0.0.1:$port" >&2
        return
    fi
    mkdir -p "$local_dir"
    if [ -d "$local_dir/kafka/data" ]; then
        echo "starting Apache Kafka $KAFKA_VERSION on 127.0.0.1:$port with the data it holds (~10 s)..." >&2
    else
        echo "starting Apache Kafka $KAFKA_VERSION on 127.0.0.1:$port, formatting its storage first (~15 s)..." >&2
    fi
    nohup "$root/deploy/local-broker.sh" serve "$local_dir/kafka" "$port" "$controller_port" >>"$local_dir/kafka.log" 2>&1 &
    echo $! >"$pid_file"
    wait_ready
    echo "Apache Kafka $KAFKA_VERSION running on 127.0.0.1:$port (data in $local_dir/kafka/data, log $local_dir/kafka.log)" >&2
}

stop() {
    if running; then
        local pid
        pid=$(cat "$pid_file")
        kill "$pid" # SIGTERM: Kafka shuts down cleanly, flushing its logs
        for _ in $(seq 1 300); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        echo "Kafka stopped" >&2
    fi
    rm -f "$pid_file"
}

case ${1:-} in
    install) install ;;
    start) start ;;
    stop) stop ;;
    serve) [ $# -eq 4 ] || { echo "usage: $0 serve DIR PORT CONTROLLER_PORT" >&2; exit 2; }; serve "$2" "$3" "$4" ;;
    serve-secure) [ $# -eq 5 ] || { echo "usage: $0 serve-secure DIR SASL_PORT TLS_PORT CONTROLLER_PORT" >&2; exit 2; }
        serve_secure "$2" "$3" "$4" "$5" ;;
    classpath) echo "$(libs_dir)/*" ;;
    status) if running; then echo "Kafka running (pid $(cat "$pid_file")) on 127.0.0.1:$port"; else echo "Kafka not running"; exit 1; fi ;;
    *) sed -n '2,25p' "$0" >&2; exit 2 ;;
esac
