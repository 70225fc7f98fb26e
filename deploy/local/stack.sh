#!/usr/bin/env bash
# shellcheck disable=SC2016  # 'bash -c' snippets take their values as $1 on purpose
# cartpulse local real-services stack: Apache Kafka (KRaft: one node, or a cluster of three) +
# Redis, run as plain processes on 127.0.0.1 -- no Docker needed.
#
#   bash deploy/local/stack.sh install        # fetch Kafka jars (Maven Central), install redis-server
#   bash deploy/local/stack.sh up             # install if needed, start all, wait until they serve clients
#   bash deploy/local/stack.sh status         # one line per service; exit 0 only if all serve clients
#   bash deploy/local/stack.sh down [--purge] # stop what we started; --purge also deletes the data dirs
#   bash deploy/local/stack.sh kill-broker I  # SIGKILL Kafka node I (1..N): a broker crash, for tests
#   bash deploy/local/stack.sh stop-broker I  # stop Kafka node I cleanly (controlled shutdown)
#   bash deploy/local/stack.sh start-broker I # start Kafka node I again, wait until it serves clients
#
# All commands are idempotent and safe to run from several shells at once
# (per-service locks). If a port already serves Kafka / answers Redis PING and
# we did not start it, 'up' reuses it and 'down' leaves it alone.
#
# Settings (environment):
#   CARTPULSE_STACK_DIR              default $HOME/.cache/cartpulse/stack
#   CARTPULSE_KAFKA_BROKERS          default 1 (Kafka nodes, each broker and controller; 3 for a
#                                    cluster that survives the loss of one broker)
#   CARTPULSE_KAFKA_PORT             default 9092  (PLAINTEXT listener of node 1, bootstrap 127.0.0.1:PORT)
#   CARTPULSE_KAFKA_CONTROLLER_PORT  default PORT+N (KRaft controller listener of node 1: 9093 alone)
#   CARTPULSE_REDIS_PORT             default 6379
#   CARTPULSE_KAFKA_VERSION          default 4.1.1 (kafka_2.13 release on Maven Central: 4.x, or 3.9.x)
#   CARTPULSE_KAFKA_HEAP             default "-Xms256m -Xmx768m" per node ("-Xms128m -Xmx512m" when N > 1)
#   CARTPULSE_STACK_TIMEOUT          default 90 (seconds to wait for each service in `up`)
#
# Ports of N nodes: node I (1..N) listens for clients on PORT+I-1 and for the controller quorum
# on CONTROLLER_PORT+I-1; the two blocks must not overlap. Defaults, N=1: 9092 / 9093 (as
# always); N=3: brokers 9092, 9093, 9094 and controllers 9095, 9096, 9097, bootstrap
# 127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094. Every node is a voter of the controller quorum
# (dynamic quorum, KIP-853: formatted with --standalone alone, with --initial-controllers when
# N > 1), and the storage of every node is formatted with the same cluster id.
#
# Replication follows N: RF = min(N, 3) for new topics and for the internal ones (consumer
# offsets, transaction state), with min.insync.replicas 2 when RF is 3 (1 otherwise), so an
# acks=all write survives one broker down and is refused, not lost, with two down.
#
# Layout under $CARTPULSE_STACK_DIR (data, logs and pids are per port, so a
# second stack on other ports can run next to the default one):
#   m2/                      Maven local repository (download cache)
#   kafka-<version>/libs/    broker + tools jars
#   kafka-<port>/            one per node, named by its client port: server.properties, log4j2.xml,
#                            kafka.pid, data/, logs/{server.log,kafka.out}
#                            (config files are regenerated on every start)
#   redis-<port>/            redis.pid, data/, logs/redis.log
#
# Kafka CLI tools are on the same classpath, e.g.
#   java -cp "$CARTPULSE_STACK_DIR/kafka-4.1.1/libs/*" org.apache.kafka.tools.TopicCommand \
#        --bootstrap-server 127.0.0.1:9092 --list
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

STACK_DIR=${CARTPULSE_STACK_DIR:-$HOME/.cache/cartpulse/stack}
KAFKA_BROKERS=${CARTPULSE_KAFKA_BROKERS:-1}
KAFKA_PORT=${CARTPULSE_KAFKA_PORT:-9092}
KAFKA_CPORT=${CARTPULSE_KAFKA_CONTROLLER_PORT:-}  # default PORT+N, set once PORT is checked
REDIS_PORT=${CARTPULSE_REDIS_PORT:-6379}
KAFKA_VERSION=${CARTPULSE_KAFKA_VERSION:-4.1.1}
if [[ $KAFKA_BROKERS != 1 ]]; then
  KAFKA_HEAP=${CARTPULSE_KAFKA_HEAP:--Xms128m -Xmx512m}
else
  KAFKA_HEAP=${CARTPULSE_KAFKA_HEAP:--Xms256m -Xmx768m}
fi
TIMEOUT=${CARTPULSE_STACK_TIMEOUT:-90}

KAFKA_LIBS=$STACK_DIR/kafka-$KAFKA_VERSION/libs
# The cluster's lock, data stamp and cluster id live in node 1's home.
KAFKA_HOME1=$STACK_DIR/kafka-$KAFKA_PORT
REDIS_HOME=$STACK_DIR/redis-$REDIS_PORT
REDIS_DATA=$REDIS_HOME/data
REDIS_LOGS=$REDIS_HOME/logs
REDIS_PID=$REDIS_HOME/redis.pid
REDIS_LOG=$REDIS_LOGS/redis.log

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

[[ $KAFKA_BROKERS =~ ^[1-9]$ ]] || die "CARTPULSE_KAFKA_BROKERS must be 1..9, got '$KAFKA_BROKERS'"
[[ $KAFKA_PORT =~ ^[0-9]+$ ]] || die "KAFKA_PORT must be a port number, got '$KAFKA_PORT'"
KAFKA_CPORT=${KAFKA_CPORT:-$((KAFKA_PORT + KAFKA_BROKERS))}
for p in KAFKA_CPORT REDIS_PORT; do
  [[ ${!p} =~ ^[0-9]+$ ]] || die "$p must be a port number, got '${!p}'"
done
# Replication of new and internal topics, and the replicas an acks=all write needs.
KAFKA_RF=$((KAFKA_BROKERS < 3 ? KAFKA_BROKERS : 3))
KAFKA_MIN_ISR=$((KAFKA_RF >= 3 ? 2 : 1))
if ((KAFKA_CPORT < KAFKA_PORT + KAFKA_BROKERS && KAFKA_PORT < KAFKA_CPORT + KAFKA_BROKERS)); then
  die "Kafka ports $KAFKA_PORT.. and controller ports $KAFKA_CPORT.. overlap ($KAFKA_BROKERS nodes)"
fi

# The node that the per-node functions below act on: select_node I sets its id, ports and paths.
select_node() {
  local i=$1
  [[ $i =~ ^[1-9]$ ]] && ((i <= KAFKA_BROKERS)) || die "no Kafka node '$i' (nodes 1..$KAFKA_BROKERS)"
  NODE_ID=$i
  NODE_PORT=$((KAFKA_PORT + i - 1))
  NODE_CPORT=$((KAFKA_CPORT + i - 1))
  NODE_NAME=kafka
  ((KAFKA_BROKERS == 1)) || NODE_NAME=kafka$i
  KAFKA_HOME=$STACK_DIR/kafka-$NODE_PORT
  KAFKA_DATA=$KAFKA_HOME/data
  KAFKA_LOGS=$KAFKA_HOME/logs
  KAFKA_PID=$KAFKA_HOME/kafka.pid
  KAFKA_CONF=$KAFKA_HOME/server.properties
  KAFKA_LOG=$KAFKA_LOGS/server.log
}

# host:port lists of every node's client and controller listeners.
join_ports() {
  local base=$1 i out=
  for ((i = 0; i < KAFKA_BROKERS; i++)); do out+=${out:+,}127.0.0.1:$((base + i)); done
  echo "$out"
}
KAFKA_BOOTSTRAP=$(join_ports "$KAFKA_PORT")
KAFKA_QUORUM=$(join_ports "$KAFKA_CPORT")

# ---------------------------------------------------------------- helpers

# Run as root, or through sudo when available.
as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root to run: $* (not root and no sudo); install it by hand"
  fi
}

apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found; install these by hand: $*"
  log "installing $* with apt-get"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# True if $1 is alive and its command line mentions $2 (guards against a
# stale pid file whose pid was reused by an unrelated process).
pid_is_ours() {
  local pid=$1 marker=$2
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$marker"
}

read_pid() {
  if [[ -s $1 ]]; then tr -dc '0-9' <"$1"; fi
}

# Pid of the broker we started for this port, or nothing. Normally read from
# the pid file. If that was lost (e.g. an 'up' and a 'down' racing from two
# shells), the JVM is found by its exact command line (our main class + our
# server.properties path) and the pid file is rewritten.
kafka_pid() {
  local pid re
  pid=$(read_pid "$KAFKA_PID")
  if [[ -n $pid ]] && pid_is_ours "$pid" "kafka.Kafka $KAFKA_CONF"; then
    echo "$pid"
    return 0
  fi
  re=$(printf '%s' "kafka.Kafka $KAFKA_CONF" | sed 's/[][\.*^$+?(){}|]/\\&/g')
  pid=$(pgrep -o -f -- "$re\$" 2>/dev/null || true)
  if [[ -n $pid ]]; then
    echo "$pid" >"$KAFKA_PID"
    echo "$pid"
  fi
}

# Pid of the redis-server we started for this port, or nothing. (No
# command-line fallback: any redis on this port looks the same.)
redis_pid() {
  local pid
  pid=$(read_pid "$REDIS_PID")
  if [[ -n $pid ]] && pid_is_ours "$pid" "127.0.0.1:$REDIS_PORT"; then echo "$pid"; fi
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A real Kafka protocol round trip in pure bash: send ApiVersions v0
# (api_key 18, correlation id 42, client id "cp") and expect a response
# with correlation id 42 and error_code 0. Works for any broker version
# (ApiVersions v0 is never removed) and needs no JVM start.
kafka_probe() {
  local hex
  hex=$(timeout 5 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "\x00\x00\x00\x0c\x00\x12\x00\x00\x00\x00\x00\x2a\x00\x02cp" >&3
    head -c 10 <&3 | od -An -tx1' _ "$1" 2>/dev/null | tr -d ' \n') || return 1
  # 4 bytes size | 4 bytes correlation id | 2 bytes error code
  [[ ${hex:8:12} == 0000002a0000 ]]
}

# Redis PING; redis-cli if present, else RESP by hand over /dev/tcp.
redis_ping() {
  if command -v redis-cli >/dev/null; then
    [[ $(timeout 5 redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null) == PONG ]]
  else
    timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "PING\r\n" >&3 && head -c 5 <&3' _ "$1" \
      2>/dev/null | grep -q '+PONG'
  fi
}

show_tail() {
  local f
  for f in "$@"; do
    [[ -s $f ]] || continue
    printf '[stack] ---- last 40 lines of %s ----\n' "$f" >&2
    tail -n 40 "$f" >&2
  done
}

# Like show_tail for Kafka: only what the current start wrote to server.log
# (from byte offset $1 on), plus the JVM's own stdout/stderr.
show_kafka_tail() {
  local offset=$1
  if [[ -s $KAFKA_LOG ]] && (($(stat -c %s "$KAFKA_LOG") > offset)); then
    printf '[stack] ---- last 40 lines of %s (this start) ----\n' "$KAFKA_LOG" >&2
    tail -c +"$((offset + 1))" "$KAFKA_LOG" | tail -n 40 >&2
  fi
  show_tail "$KAFKA_LOGS/kafka.out"
}

# Stop our process $2 (empty: nothing to do) and remove its pid file $3:
# SIGTERM, wait up to $4 seconds, then SIGKILL.
stop_pid() {
  local name=$1 pid=$2 pidfile=$3 grace=$4 i
  if [[ -z $pid ]]; then
    rm -f "$pidfile"
    log "$name: not running (nothing we started)"
    return 0
  fi
  log "$name: stopping pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 5; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name: still alive after ${grace}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pidfile"
  log "$name: stopped"
}

# ---------------------------------------------------------------- install

ensure_java() {
  if ! command -v java >/dev/null; then apt_install openjdk-17-jre-headless; fi
  local major
  major=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
  major=${major%%.*}
  if ! [[ $major =~ ^[0-9]+$ ]] || ((major < 17)); then
    die "Kafka 4 needs Java >= 17, found java.specification.version='$major'"
  fi
}

ensure_kafka_libs() {
  if [[ -f $KAFKA_LIBS/.complete ]]; then return 0; fi
  ensure_java
  command -v mvn >/dev/null || apt_install maven
  mkdir -p "$STACK_DIR"
  # Serialise downloads: two stacks started at once must not both write libs/.
  exec 8>"$STACK_DIR/.install.lock"
  flock 8
  if [[ ! -f $KAFKA_LIBS/.complete ]]; then
    log "fetching Kafka $KAFKA_VERSION jars from Maven Central (first run only)"
    local tmp=$KAFKA_LIBS.tmp.$$ t0=$SECONDS
    rm -rf "$tmp"
    # Download into a temp dir and rename, so an interrupted download is
    # never mistaken for a complete one.
    local mvn_args=(-q -B -Dstyle.color=never -f "$SCRIPT_DIR/pom.xml"
      dependency:copy-dependencies -DincludeScope=runtime
      -Dkafka.version="$KAFKA_VERSION"
      -DoutputDirectory="$tmp" -Dmaven.repo.local="$STACK_DIR/m2")
    # Kafka 3.x brings its own slf4j binding (reload4j): skip the log4j2 one.
    if [[ ${KAFKA_VERSION%%.*} -lt 4 ]]; then mvn_args+=(-Dkafka.log4j1); fi
    if ! mvn "${mvn_args[@]}" >"$STACK_DIR/mvn.log" 2>&1; then
      # kafka-tools (CLI only) is missing for some releases: retry without it.
      if grep -q 'kafka-tools:jar' "$STACK_DIR/mvn.log" &&
         mvn "${mvn_args[@]}" -Dkafka.skipTools >"$STACK_DIR/mvn.log" 2>&1; then
        log "note: kafka-tools $KAFKA_VERSION is not on Maven Central; broker only, no CLI tools"
      else
        show_tail "$STACK_DIR/mvn.log"
        rm -rf "$tmp"
        die "could not fetch Kafka $KAFKA_VERSION jars (log: $STACK_DIR/mvn.log)"
      fi
    fi
    touch "$tmp/.complete"
    rm -rf "$KAFKA_LIBS"
    mv "$tmp" "$KAFKA_LIBS"
    log "Kafka $KAFKA_VERSION: $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars in $KAFKA_LIBS ($((SECONDS - t0))s)"
  fi
  flock -u 8
}

ensure_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  command -v redis-server >/dev/null || die "redis-server still not found after install"
}

cmd_install() {
  ensure_kafka_libs
  ensure_redis
  log "installed: Kafka $KAFKA_VERSION ($KAFKA_LIBS), $(redis-server --version | cut -d' ' -f1-3)"
}

# ---------------------------------------------------------------- kafka

write_kafka_config() {
  local about="Single-node KRaft: this process is both broker and controller."
  local replicas="One replica of everything."
  if ((KAFKA_BROKERS > 1)); then
    about="Node $NODE_ID of $KAFKA_BROKERS: broker and voter of the controller quorum."
    replicas="$KAFKA_RF replicas of everything; an acks=all write needs $KAFKA_MIN_ISR in sync."
  fi
  mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
  cat >"$KAFKA_CONF" <<EOF
# Generated by deploy/local/stack.sh -- edits are overwritten on every 'up'.
# $about
process.roles=broker,controller
node.id=$NODE_ID
listeners=PLAINTEXT://127.0.0.1:$NODE_PORT,CONTROLLER://127.0.0.1:$NODE_CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$NODE_PORT,CONTROLLER://127.0.0.1:$NODE_CPORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
# Dynamic quorum (KIP-853); storage is formatted with --standalone (one node) or
# --initial-controllers (every node a voter).
controller.quorum.bootstrap.servers=$KAFKA_QUORUM
log.dirs=$KAFKA_DATA

# $replicas
default.replication.factor=$KAFKA_RF
min.insync.replicas=$KAFKA_MIN_ISR
offsets.topic.replication.factor=$KAFKA_RF
transaction.state.log.replication.factor=$KAFKA_RF
transaction.state.log.min.isr=$KAFKA_MIN_ISR
share.coordinator.state.topic.replication.factor=$KAFKA_RF
share.coordinator.state.topic.min.isr=$KAFKA_MIN_ISR
# Fewer internal partitions than the default 50: quicker first consumer
# group / transaction on a 2-core dev box (same in docker-compose.kafka.yml).
offsets.topic.num.partitions=8
transaction.state.log.num.partitions=8

# Test-friendly behaviour.
auto.create.topics.enable=true
num.partitions=1
delete.topic.enable=true
# No 3 s wait before the first rebalance of a new consumer group.
group.initial.rebalance.delay.ms=0

# Small machine.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=67108864
EOF
  if ((KAFKA_BROKERS > 1)); then
    cat >>"$KAFKA_CONF" <<EOF

# A killed node is fenced (and leaves every ISR) after 6 s, not 9; a follower that
# stops fetching leaves the ISR after 10 s, not 30: failover within a test's patience.
broker.session.timeout.ms=6000
broker.heartbeat.interval.ms=1000
replica.lag.time.max.ms=10000
EOF
  fi

  write_log4j_configs
}

# Loggers raised from INFO to WARN so that tests creating many topics/groups
# do not flood server.log.
QUIET_LOGGERS=(
  kafka.request.logger 'kafka.network.RequestChannel$' state.change.logger
  kafka.log org.apache.kafka.storage.internals.log kafka.cluster.Partition
  kafka.server.ReplicaFetcherManager kafka.server.ReplicaAlterLogDirsManager
  org.apache.kafka.clients org.apache.kafka.common.utils.AppInfoParser
  # one or more lines per partition or topic created / re-elected / loaded
  org.apache.kafka.controller.ReplicationControlManager
  org.apache.kafka.controller.PartitionChangeBuilder
  org.apache.kafka.controller.ConfigurationControlManager
  kafka.server.metadata.DynamicConfigPublisher
  # ~350-line "KafkaConfig values" dump, five times per start (the effective
  # settings are in server.properties anyway)
  org.apache.kafka.common.config.AbstractConfig
)

# Broker logging: INFO into a size-capped rolling logs/server.log. Kafka 4
# uses log4j2 (log4j2.xml); Kafka 3.x uses reload4j (log4j.properties). Both
# files are written and both are passed to the JVM; each version reads its own.
write_log4j_configs() {
  local l
  {
    cat <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by deploy/local/stack.sh -->
<Configuration status="WARN">
  <Appenders>
    <RollingFile name="server" fileName="$KAFKA_LOG" filePattern="$KAFKA_LOG.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <SizeBasedTriggeringPolicy size="10MB"/>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="server"/></Root>
EOF
    for l in "${QUIET_LOGGERS[@]}"; do printf '    <Logger name="%s" level="WARN"/>\n' "$l"; done
    printf '  </Loggers>\n</Configuration>\n'
  } >"$KAFKA_HOME/log4j2.xml"

  {
    cat <<EOF
# Generated by deploy/local/stack.sh (read by Kafka 3.x only)
log4j.rootLogger=INFO, server
log4j.appender.server=org.apache.log4j.RollingFileAppender
log4j.appender.server.File=$KAFKA_LOG
log4j.appender.server.MaxFileSize=10MB
log4j.appender.server.MaxBackupIndex=3
log4j.appender.server.layout=org.apache.log4j.PatternLayout
log4j.appender.server.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
    for l in "${QUIET_LOGGERS[@]}"; do printf 'log4j.logger.%s=WARN\n' "$l"; done
  } >"$KAFKA_HOME/log4j.properties"

  # CLI tools (StorageTool): warnings only, to stderr.
  cat >"$KAFKA_HOME/log4j2-tools.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders><Console name="err" target="SYSTEM_ERR"><PatternLayout pattern="%p %m (%c)%n"/></Console></Appenders>
  <Loggers><Root level="WARN"><AppenderRef ref="err"/></Root></Loggers>
</Configuration>
EOF
  printf '%s\n' 'log4j.rootLogger=WARN, err' \
    'log4j.appender.err=org.apache.log4j.ConsoleAppender' 'log4j.appender.err.Target=System.err' \
    'log4j.appender.err.layout=org.apache.log4j.PatternLayout' \
    'log4j.appender.err.layout.ConversionPattern=%p %m (%c)%n' >"$KAFKA_HOME/log4j-tools.properties"
}

kafka_tool() {
  java -Xmx256m -Dlog4j2.configurationFile="file:$KAFKA_HOME/log4j2-tools.xml" \
    -Dlog4j.configuration="file:$KAFKA_HOME/log4j-tools.properties" \
    -cp "$KAFKA_LIBS/*" "$@"
}

# A Kafka Uuid as StorageTool random-uuid prints it (16 random bytes, URL-safe base64 without
# padding, never starting with '-'), without starting a JVM.
random_uuid() {
  local id
  while id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n') && [[ $id == -* ]]; do :; done
  echo "$id"
}

# The controller ports the storage is formatted for: "9093" for one node, "9095,9096,9097" for
# three. The quorum's endpoints are baked into the formatted data.
quorum_stamp() {
  local i out=
  for ((i = 0; i < KAFKA_BROKERS; i++)); do out+=${out:+,}$((KAFKA_CPORT + i)); done
  echo "$out"
}

# Format every node's data dir once, all with one cluster id (each node's config written
# first). Remember which controller ports the quorum was formatted for and refuse to start with
# others; refuse a cluster that is only partly formatted (a purge of some nodes' data).
format_kafka_storage() {
  local i want formatted=0 missing=0 stamp
  want=$(quorum_stamp)
  for ((i = 1; i <= KAFKA_BROKERS; i++)); do
    select_node "$i"
    stamp=$KAFKA_HOME/formatted-for-controller-port
    if [[ -f $KAFKA_DATA/meta.properties ]]; then
      if [[ -f $stamp && $(cat "$stamp") != "$want" ]]; then
        die "kafka-$NODE_PORT data was formatted for controller port(s) $(cat "$stamp"), not $want; run 'down --purge' with the same CARTPULSE_KAFKA_PORT and CARTPULSE_KAFKA_BROKERS first"
      fi
      formatted=$((formatted + 1))
    else
      missing=$((missing + 1))
    fi
  done
  ((missing)) || return 0
  ((formatted == 0)) || die "kafka: $formatted of $KAFKA_BROKERS nodes are formatted, $missing not; run 'down --purge' first"
  select_node 1
  local cluster_id
  cluster_id=$(kafka_tool kafka.tools.StorageTool random-uuid 2>>"$KAFKA_LOGS/format.log" | tail -n 1)
  local quorum=(--standalone) voters=
  if ((KAFKA_BROKERS > 1)); then
    for ((i = 1; i <= KAFKA_BROKERS; i++)); do
      voters+=${voters:+,}$i@127.0.0.1:$((KAFKA_CPORT + i - 1)):$(random_uuid)
    done
    quorum=(--initial-controllers "$voters")
  fi
  local pids=()
  for ((i = 1; i <= KAFKA_BROKERS; i++)); do
    select_node "$i"
    log "$NODE_NAME: formatting $KAFKA_DATA (cluster id $cluster_id)"
    kafka_tool kafka.tools.StorageTool format "${quorum[@]}" -t "$cluster_id" -c "$KAFKA_CONF" \
      >>"$KAFKA_LOGS/format.log" 2>&1 &
    pids+=($!)
  done
  for ((i = 1; i <= KAFKA_BROKERS; i++)); do
    select_node "$i"
    if ! wait "${pids[i - 1]}"; then
      show_tail "$KAFKA_LOGS/format.log"
      die "$NODE_NAME: storage format failed (log: $KAFKA_LOGS/format.log)"
    fi
    echo "$want" >"$KAFKA_HOME/formatted-for-controller-port"
  done
}

# Start the selected node's JVM (its storage formatted) without waiting for it to serve; sets
# STARTED_PID and STARTED_OFFSET (where this start's server.log lines begin) for wait_kafka.
kafka_spawn() {
  write_kafka_config
  # Only log lines written after this point count as "started".
  local offset=0
  [[ -f $KAFKA_LOG ]] && offset=$(stat -c %s "$KAFKA_LOG")
  echo "$offset" >"$KAFKA_HOME/server.log.offset"

  log "$NODE_NAME: starting $KAFKA_VERSION on 127.0.0.1:$NODE_PORT (controller :$NODE_CPORT)"
  # The lock fds (6-8) are closed for the child: a daemon inheriting them
  # would hold the locks for its whole life and block every later 'up'.
  # setsid: own session, so the broker survives the shell/process group that
  # ran 'up'. The inner bash writes its own pid (atomically: tmp + mv) and
  # then execs java, so the pid file holds the JVM's pid.
  # shellcheck disable=SC2086  # KAFKA_HEAP is a list of JVM flags
  setsid bash -c 'echo $$ >"$1.tmp" && mv -f "$1.tmp" "$1"; shift; exec "$@"' _ "$KAFKA_PID" \
    java $KAFKA_HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
      -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="file:$KAFKA_HOME/log4j2.xml" \
      -Dlog4j.configuration="file:$KAFKA_HOME/log4j.properties" \
      -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_CONF" \
    </dev/null >"$KAFKA_LOGS/kafka.out" 2>&1 6>&- 7>&- 8>&- &
  # Wait for the pid file (written by the child right away).
  local i pid
  for ((i = 0; i < 50; i++)); do [[ -s $KAFKA_PID ]] && break; sleep 0.1; done
  pid=$(kafka_pid)
  if [[ -z $pid ]]; then
    show_kafka_tail "$offset"
    die "$NODE_NAME: broker process not found after start (logs: $KAFKA_LOGS)"
  fi
  STARTED_PID=$pid
  STARTED_OFFSET=$offset
}

# Checks before starting the selected node: 0 to start it, 1 when it already runs (ours and
# serving, or someone else's broker on its port). Sets WAIT_PID when it is ours and still
# starting. Dies when its ports are taken by something else.
kafka_needs_start() {
  local pid
  WAIT_PID=
  pid=$(kafka_pid)
  if [[ -n $pid ]]; then
    if kafka_probe "$NODE_PORT"; then
      log "$NODE_NAME: already running (pid $pid) on 127.0.0.1:$NODE_PORT"
    else
      log "$NODE_NAME: pid $pid is ours but not serving yet; waiting"
      WAIT_PID=$pid
    fi
    return 1
  fi
  rm -f "$KAFKA_PID"
  if kafka_probe "$NODE_PORT"; then
    log "$NODE_NAME: reusing a broker already serving 127.0.0.1:$NODE_PORT (not started by this script)"
    return 1
  fi
  if port_open "$NODE_PORT"; then
    die "$NODE_NAME: port $NODE_PORT is in use by something that does not speak Kafka"
  fi
  if port_open "$NODE_CPORT"; then
    die "$NODE_NAME: controller port $NODE_CPORT is already in use"
  fi
  return 0
}

# One 'up' (or start/stop of a node) per cluster at a time: tests may call 'up' concurrently.
lock_kafka() {
  mkdir -p "$KAFKA_HOME1"
  exec 7>"$KAFKA_HOME1/.lock"
  flock 7
}

# Start every node that is not running, then wait until each serves clients. The nodes start
# together: a broker of a cluster only reports "started" once a majority of the quorum is up.
kafka_up() {
  local i todo=() waits=() offsets=()
  lock_kafka
  for ((i = 1; i <= KAFKA_BROKERS; i++)); do
    select_node "$i"
    if kafka_needs_start; then
      todo+=("$i")
    elif [[ -n $WAIT_PID ]]; then
      waits+=("$i:$WAIT_PID:$(cat "$KAFKA_HOME/server.log.offset" 2>/dev/null || echo 0)")
    fi
  done
  if ((${#todo[@]})); then
    ensure_kafka_libs
    ensure_java
    for i in "${todo[@]}"; do select_node "$i"; write_kafka_config; done
    format_kafka_storage
    for i in "${todo[@]}"; do
      select_node "$i"
      kafka_spawn
      waits+=("$i:$STARTED_PID:$STARTED_OFFSET")
    done
  fi
  local w pid offset
  for w in "${waits[@]}"; do
    IFS=: read -r i pid offset <<<"$w"
    select_node "$i"
    wait_kafka "$pid" "$offset"
  done
}

# Start one node of a formatted cluster again (after kill-broker / stop-broker).
kafka_start_node() {
  lock_kafka
  select_node "$1"
  if ! kafka_needs_start; then
    if [[ -n $WAIT_PID ]]; then
      wait_kafka "$WAIT_PID" "$(cat "$KAFKA_HOME/server.log.offset" 2>/dev/null || echo 0)"
    fi
    return 0
  fi
  [[ -f $KAFKA_DATA/meta.properties ]] || die "$NODE_NAME: no formatted data in $KAFKA_DATA; run 'up' first"
  ensure_kafka_libs
  ensure_java
  kafka_spawn
  wait_kafka "$STARTED_PID" "$STARTED_OFFSET"
}

# SIGKILL one node: a crash, no controlled shutdown, nothing flushed.
kafka_kill_node() {
  local pid i
  lock_kafka
  select_node "$1"
  pid=$(kafka_pid)
  [[ -n $pid ]] || die "$NODE_NAME: not running (nothing we started)"
  log "$NODE_NAME: SIGKILL pid $pid"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$KAFKA_PID"
}

kafka_stop_node() {
  lock_kafka
  select_node "$1"
  stop_pid "$NODE_NAME" "$(kafka_pid)" "$KAFKA_PID" 30
}

# Wait until the selected node answers ApiVersions and has logged "Kafka Server
# started" (the listener can accept connections slightly before the broker is
# unfenced and able to serve metadata).
wait_kafka() {
  local pid=$1 offset=$2 t0=$SECONDS
  while ((SECONDS - t0 < TIMEOUT)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      show_kafka_tail "$offset"
      rm -f "$KAFKA_PID"
      die "$NODE_NAME: process exited during startup (logs: $KAFKA_LOGS)"
    fi
    if kafka_probe "$NODE_PORT" &&
       tail -c +"$((offset + 1))" "$KAFKA_LOG" 2>/dev/null | grep -q 'Kafka Server started'; then
      log "$NODE_NAME: ready on 127.0.0.1:$NODE_PORT (pid $pid, $((SECONDS - t0))s)"
      return 0
    fi
    sleep 0.5
  done
  show_kafka_tail "$offset"
  die "$NODE_NAME: not serving after ${TIMEOUT}s (pid $pid still running; logs: $KAFKA_LOGS)"
}

# ---------------------------------------------------------------- redis

redis_up() {
  local pid
  mkdir -p "$REDIS_HOME"
  exec 6>"$REDIS_HOME/.lock"
  flock 6
  pid=$(redis_pid)
  if [[ -n $pid ]] && redis_ping "$REDIS_PORT"; then
    log "redis: already running (pid $pid) on 127.0.0.1:$REDIS_PORT"
    return 0
  fi
  if redis_ping "$REDIS_PORT"; then
    log "redis: reusing a server already answering PING on 127.0.0.1:$REDIS_PORT (not started by this script)"
    return 0
  fi
  if port_open "$REDIS_PORT"; then
    die "redis: port $REDIS_PORT is in use by something that does not answer PING"
  fi
  # Ours but neither answering nor listening: replace it.
  if [[ -n $pid ]]; then stop_pid redis "$pid" "$REDIS_PID" 10; fi
  rm -f "$REDIS_PID"

  ensure_redis
  mkdir -p "$REDIS_DATA" "$REDIS_LOGS"
  log "redis: starting on 127.0.0.1:$REDIS_PORT"
  # Pure cache for dev/tests: no RDB snapshots, no AOF. --daemonize makes
  # redis detach itself and write the pid file. Lock fds closed as for Kafka.
  if ! redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes \
        --save '' --appendonly no --dir "$REDIS_DATA" \
        --pidfile "$REDIS_PID" --logfile "$REDIS_LOG" >>"$REDIS_LOGS/redis.out" 2>&1 6>&- 7>&- 8>&-; then
    show_tail "$REDIS_LOG" "$REDIS_LOGS/redis.out"
    die "redis: redis-server failed to start (logs: $REDIS_LOGS)"
  fi
  local t0=$SECONDS
  while ((SECONDS - t0 < TIMEOUT)); do
    if redis_ping "$REDIS_PORT"; then
      log "redis: ready on 127.0.0.1:$REDIS_PORT (pid $(read_pid "$REDIS_PID"))"
      return 0
    fi
    pid=$(read_pid "$REDIS_PID")
    if ((SECONDS - t0 >= 2)) && { [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; }; then
      show_tail "$REDIS_LOG" "$REDIS_LOGS/redis.out"
      die "redis: process exited during startup (logs: $REDIS_LOGS)"
    fi
    sleep 0.2
  done
  show_tail "$REDIS_LOG"
  die "redis: no PONG after ${TIMEOUT}s (logs: $REDIS_LOGS)"
}

# ---------------------------------------------------------------- commands

cmd_up() {
  mkdir -p "$STACK_DIR"
  # (jars / redis-server are installed by kafka_up / redis_up only when they
  # actually have to start something, not when reusing a running service)
  redis_up
  kafka_up
  log "up: KAFKA_BOOTSTRAP=$KAFKA_BOOTSTRAP REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
}

cmd_down() {
  local purge=0 arg i stops=()
  for arg in "$@"; do
    case $arg in
      --purge) purge=1 ;;
      *) die "down: unknown option '$arg'" ;;
    esac
  done
  # Take the same locks as 'up', so an 'up' and a 'down' from two shells cannot interleave.
  mkdir -p "$REDIS_HOME"
  lock_kafka
  exec 6>"$REDIS_HOME/.lock"
  flock 6
  # Kafka's controlled shutdown normally takes a few seconds; give it 30. The nodes of a
  # cluster stop together: one stopping after the quorum lost its majority would wait for a
  # controller that never answers.
  for ((i = 1; i <= KAFKA_BROKERS; i++)); do
    select_node "$i"
    stop_pid "$NODE_NAME" "$(kafka_pid)" "$KAFKA_PID" 30 &
    stops+=($!)
  done
  for i in "${stops[@]}"; do wait "$i"; done
  stop_pid redis "$(redis_pid)" "$REDIS_PID" 10
  if ((purge)); then
    for ((i = 1; i <= KAFKA_BROKERS; i++)); do
      select_node "$i"
      rm -rf "$KAFKA_DATA" "$KAFKA_HOME/formatted-for-controller-port"
      log "purged $KAFKA_DATA"
    done
    rm -rf "$REDIS_DATA"
    log "purged $REDIS_DATA"
  fi
}

cmd_status() {
  local ok=0 pid state i
  for ((i = 1; i <= KAFKA_BROKERS; i++)); do
    select_node "$i"
    pid=$(kafka_pid)
    if [[ -n $pid ]]; then
      if kafka_probe "$NODE_PORT"; then state=running; else state="started, not serving"; ok=1; fi
      printf '%-6s %-21s pid %-7s port %-5s log %s\n' "$NODE_NAME" "$state" "$pid" "$NODE_PORT" "$KAFKA_LOG"
    elif kafka_probe "$NODE_PORT"; then
      printf '%-6s %-21s pid %-7s port %-5s log %s\n' "$NODE_NAME" "running (external)" - "$NODE_PORT" -
    else
      printf '%-6s %-21s pid %-7s port %-5s log %s\n' "$NODE_NAME" stopped - "$NODE_PORT" "$KAFKA_LOG"
      ok=1
    fi
  done
  pid=$(redis_pid)
  if [[ -n $pid ]]; then
    if redis_ping "$REDIS_PORT"; then state=running; else state="started, not serving"; ok=1; fi
    printf 'redis  %-21s pid %-7s port %-5s log %s\n' "$state" "$pid" "$REDIS_PORT" "$REDIS_LOG"
  elif redis_ping "$REDIS_PORT"; then
    printf 'redis  %-21s pid %-7s port %-5s log %s\n' "running (external)" - "$REDIS_PORT" -
  else
    printf 'redis  %-21s pid %-7s port %-5s log %s\n' stopped - "$REDIS_PORT" "$REDIS_LOG"
    ok=1
  fi
  return $ok
}

# kill-broker / stop-broker / start-broker take one node number, 1..N.
one_node() {
  [[ $# -eq 1 ]] || die "$CMD: give one node number, 1..$KAFKA_BROKERS"
  select_node "$1"
}

usage() {
  sed -n '/^# cartpulse local/,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

CMD=${1:-}
case $CMD in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  status) shift; cmd_status "$@" ;;
  install) shift; cmd_install "$@" ;;
  kill-broker) shift; one_node "$@"; kafka_kill_node "$1" ;;
  stop-broker) shift; one_node "$@"; kafka_stop_node "$1" ;;
  start-broker) shift; one_node "$@"; kafka_start_node "$1" ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
