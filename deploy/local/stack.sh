#!/usr/bin/env bash
# shellcheck disable=SC2016  # 'bash -c' snippets take their values as $1 on purpose
# cartpulse local real-services stack: Apache Kafka (single-node KRaft) + Redis,
# run as plain processes on 127.0.0.1 -- no Docker needed.
#
#   bash deploy/local/stack.sh install        # fetch Kafka jars (Maven Central), install redis-server
#   bash deploy/local/stack.sh up             # install if needed, start both, wait until they serve clients
#   bash deploy/local/stack.sh status         # one line per service; exit 0 only if both serve clients
#   bash deploy/local/stack.sh down [--purge] # stop what we started; --purge also deletes the data dirs
#
# All commands are idempotent and safe to run from several shells at once
# (per-service locks). If a port already serves Kafka / answers Redis PING and
# we did not start it, 'up' reuses it and 'down' leaves it alone.
#
# Settings (environment):
#   CARTPULSE_STACK_DIR              default $HOME/.cache/cartpulse/stack
#   CARTPULSE_KAFKA_PORT             default 9092  (PLAINTEXT listener, bootstrap 127.0.0.1:PORT)
#   CARTPULSE_KAFKA_CONTROLLER_PORT  default 9093  (KRaft controller listener)
#   CARTPULSE_REDIS_PORT             default 6379
#   CARTPULSE_KAFKA_VERSION          default 4.1.1 (kafka_2.13 release on Maven Central: 4.x, or 3.9.x)
#   CARTPULSE_KAFKA_HEAP             default "-Xms256m -Xmx768m"
#   CARTPULSE_STACK_TIMEOUT          default 90 (seconds to wait for each service in `up`)
#
# Layout under $CARTPULSE_STACK_DIR (data, logs and pids are per port, so a
# second stack on other ports can run next to the default one):
#   m2/                      Maven local repository (download cache)
#   kafka-<version>/libs/    broker + tools jars
#   kafka-<port>/            server.properties, log4j2.xml, kafka.pid, data/, logs/{server.log,kafka.out}
#                            (config files are regenerated on every 'up')
#   redis-<port>/            redis.pid, data/, logs/redis.log
#
# Kafka CLI tools are on the same classpath, e.g.
#   java -cp "$CARTPULSE_STACK_DIR/kafka-4.1.1/libs/*" org.apache.kafka.tools.TopicCommand \
#        --bootstrap-server 127.0.0.1:9092 --list
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

STACK_DIR=${CARTPULSE_STACK_DIR:-$HOME/.cache/cartpulse/stack}
KAFKA_PORT=${CARTPULSE_KAFKA_PORT:-9092}
KAFKA_CPORT=${CARTPULSE_KAFKA_CONTROLLER_PORT:-9093}
REDIS_PORT=${CARTPULSE_REDIS_PORT:-6379}
KAFKA_VERSION=${CARTPULSE_KAFKA_VERSION:-4.1.1}
KAFKA_HEAP=${CARTPULSE_KAFKA_HEAP:--Xms256m -Xmx768m}
TIMEOUT=${CARTPULSE_STACK_TIMEOUT:-90}

KAFKA_LIBS=$STACK_DIR/kafka-$KAFKA_VERSION/libs
KAFKA_HOME=$STACK_DIR/kafka-$KAFKA_PORT
KAFKA_DATA=$KAFKA_HOME/data
KAFKA_LOGS=$KAFKA_HOME/logs
KAFKA_PID=$KAFKA_HOME/kafka.pid
KAFKA_CONF=$KAFKA_HOME/server.properties
KAFKA_LOG=$KAFKA_LOGS/server.log
REDIS_HOME=$STACK_DIR/redis-$REDIS_PORT
REDIS_DATA=$REDIS_HOME/data
REDIS_LOGS=$REDIS_HOME/logs
REDIS_PID=$REDIS_HOME/redis.pid
REDIS_LOG=$REDIS_LOGS/redis.log

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

for p in KAFKA_PORT KAFKA_CPORT REDIS_PORT; do
  [[ ${!p} =~ ^[0-9]+$ ]] || die "$p must be a port number, got '${!p}'"
done
[[ $KAFKA_PORT != "$KAFKA_CPORT" ]] || die "Kafka and controller ports must differ"

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
  mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
  cat >"$KAFKA_CONF" <<EOF
# Generated by deploy/local/stack.sh -- edits are overwritten on every 'up'.
# Single-node KRaft: this process is both broker and controller.
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CPORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
# Dynamic quorum (KIP-853); storage is formatted with --standalone.
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CPORT
log.dirs=$KAFKA_DATA

# One replica of everything.
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
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

# Format the data dir once. The controller endpoint is baked into the
# formatted (standalone) quorum, so remember which controller port it was
# formatted for and refuse to start with another one.
format_kafka_storage() {
  local stamp=$KAFKA_HOME/formatted-for-controller-port
  if [[ -f $KAFKA_DATA/meta.properties ]]; then
    if [[ -f $stamp && $(cat "$stamp") != "$KAFKA_CPORT" ]]; then
      die "kafka-$KAFKA_PORT data was formatted for controller port $(cat "$stamp"), not $KAFKA_CPORT; run 'down --purge' with the same CARTPULSE_KAFKA_PORT first"
    fi
    return 0
  fi
  local cluster_id
  cluster_id=$(kafka_tool kafka.tools.StorageTool random-uuid 2>>"$KAFKA_LOGS/format.log" | tail -n 1)
  log "kafka: formatting $KAFKA_DATA (cluster id $cluster_id)"
  if ! kafka_tool kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$KAFKA_CONF" \
        >>"$KAFKA_LOGS/format.log" 2>&1; then
    show_tail "$KAFKA_LOGS/format.log"
    die "kafka: storage format failed (log: $KAFKA_LOGS/format.log)"
  fi
  echo "$KAFKA_CPORT" >"$stamp"
}

kafka_up() {
  local pid
  # One 'up' per broker at a time (tests may call 'up' concurrently).
  mkdir -p "$KAFKA_HOME"
  exec 7>"$KAFKA_HOME/.lock"
  flock 7
  pid=$(kafka_pid)
  if [[ -n $pid ]]; then
    if kafka_probe "$KAFKA_PORT"; then
      log "kafka: already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
      return 0
    fi
    log "kafka: pid $pid is ours but not serving yet; waiting"
    wait_kafka "$pid" "$(cat "$KAFKA_HOME/server.log.offset" 2>/dev/null || echo 0)"
    return
  fi
  rm -f "$KAFKA_PID"
  if kafka_probe "$KAFKA_PORT"; then
    log "kafka: reusing a broker already serving 127.0.0.1:$KAFKA_PORT (not started by this script)"
    return 0
  fi
  if port_open "$KAFKA_PORT"; then
    die "kafka: port $KAFKA_PORT is in use by something that does not speak Kafka"
  fi
  if port_open "$KAFKA_CPORT"; then
    die "kafka: controller port $KAFKA_CPORT is already in use"
  fi

  ensure_kafka_libs
  ensure_java
  write_kafka_config
  format_kafka_storage

  # Only log lines written after this point count as "started".
  local offset=0
  [[ -f $KAFKA_LOG ]] && offset=$(stat -c %s "$KAFKA_LOG")
  echo "$offset" >"$KAFKA_HOME/server.log.offset"

  log "kafka: starting $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT (controller :$KAFKA_CPORT)"
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
  local i
  for ((i = 0; i < 50; i++)); do [[ -s $KAFKA_PID ]] && break; sleep 0.1; done
  pid=$(kafka_pid)
  if [[ -z $pid ]]; then
    show_kafka_tail "$offset"
    die "kafka: broker process not found after start (logs: $KAFKA_LOGS)"
  fi
  wait_kafka "$pid" "$offset"
}

# Wait until our broker answers ApiVersions and has logged "Kafka Server
# started" (the listener can accept connections slightly before the broker is
# unfenced and able to serve metadata).
wait_kafka() {
  local pid=$1 offset=$2 t0=$SECONDS
  while ((SECONDS - t0 < TIMEOUT)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      show_kafka_tail "$offset"
      rm -f "$KAFKA_PID"
      die "kafka: process exited during startup (logs: $KAFKA_LOGS)"
    fi
    if kafka_probe "$KAFKA_PORT" &&
       tail -c +"$((offset + 1))" "$KAFKA_LOG" 2>/dev/null | grep -q 'Kafka Server started'; then
      log "kafka: ready on 127.0.0.1:$KAFKA_PORT (pid $pid, $((SECONDS - t0))s)"
      return 0
    fi
    sleep 0.5
  done
  show_kafka_tail "$offset"
  die "kafka: not serving after ${TIMEOUT}s (pid $pid still running; logs: $KAFKA_LOGS)"
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
  log "up: KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
}

cmd_down() {
  local purge=0 arg
  for arg in "$@"; do
    case $arg in
      --purge) purge=1 ;;
      *) die "down: unknown option '$arg'" ;;
    esac
  done
  # Take the same per-service locks as 'up', so an 'up' and a 'down' from two
  # shells cannot interleave.
  mkdir -p "$KAFKA_HOME" "$REDIS_HOME"
  exec 7>"$KAFKA_HOME/.lock" 6>"$REDIS_HOME/.lock"
  flock 7
  flock 6
  # Kafka's controlled shutdown normally takes a few seconds; give it 30.
  stop_pid kafka "$(kafka_pid)" "$KAFKA_PID" 30
  stop_pid redis "$(redis_pid)" "$REDIS_PID" 10
  if ((purge)); then
    rm -rf "$KAFKA_DATA" "$KAFKA_HOME/formatted-for-controller-port" "$REDIS_DATA"
    log "purged $KAFKA_DATA and $REDIS_DATA"
  fi
}

cmd_status() {
  local ok=0 pid state
  pid=$(kafka_pid)
  if [[ -n $pid ]]; then
    if kafka_probe "$KAFKA_PORT"; then state=running; else state="started, not serving"; ok=1; fi
    printf 'kafka  %-21s pid %-7s port %-5s log %s\n' "$state" "$pid" "$KAFKA_PORT" "$KAFKA_LOG"
  elif kafka_probe "$KAFKA_PORT"; then
    printf 'kafka  %-21s pid %-7s port %-5s log %s\n' "running (external)" - "$KAFKA_PORT" -
  else
    printf 'kafka  %-21s pid %-7s port %-5s log %s\n' stopped - "$KAFKA_PORT" "$KAFKA_LOG"
    ok=1
  fi
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

usage() {
  sed -n '/^# cartpulse local/,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  status) shift; cmd_status "$@" ;;
  install) shift; cmd_install "$@" ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
