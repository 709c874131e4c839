#!/usr/bin/env bash
# kafka-local.sh: a single-node Apache Kafka broker (KRaft, no ZooKeeper) on
# 127.0.0.1, without Docker. Jars come from Maven Central via pom.xml.
#
#   kafka-local.sh fetch|start|stop|status|reset
#
# See README.md next to this file for the environment variables.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
CACHE_DIR="${KAFKA_LOCAL_CACHE:-$HOME/.cache/stream-monitor/kafka-$KAFKA_VERSION}"
DATA_DIR="${KAFKA_LOCAL_DIR:-${TMPDIR:-/tmp}/stream-monitor-kafka}"
HOST=127.0.0.1
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"

LIBS_DIR="$CACHE_DIR/libs"
FETCH_MARKER="$CACHE_DIR/.fetched"
PID_FILE="$DATA_DIR/kafka.pid"
CONFIG="$DATA_DIR/server.properties"
# Written by us at format time; records the ports the storage was formatted for
# and marks the directory as ours (reset refuses to delete anything else).
STAMP="$DATA_DIR/.kafka-local"
BROKER_LOG="$DATA_DIR/server.log"
# The JVM's own stdout/stderr (crashes before log4j is up end up here).
CONSOLE_LOG="$DATA_DIR/console.log"
# Class-data-sharing archive of the broker's classes (see cds_opt).
CDS_ARCHIVE="$CACHE_DIR/broker-classes.jsa"
CDS_DUMP="$DATA_DIR/broker-classes.jsa"

if [[ -n "${JAVA_HOME:-}" ]]; then JAVA="$JAVA_HOME/bin/java"; else JAVA=java; fi

say() { printf 'kafka-local: %s\n' "$*"; }
die() { printf 'kafka-local: error: %s\n' "$*" >&2; exit 1; }

usage() {
  cat <<EOF
usage: $(basename "$0") fetch|start|stop|status|reset
  fetch   download the Kafka $KAFKA_VERSION jars into $CACHE_DIR (once)
  start   start the broker on $HOST:$PORT (data: $DATA_DIR) and wait until it answers
  stop    stop the broker started from $DATA_DIR
  status  print running/stopped (exit 0/1)
  reset   stop and delete $DATA_DIR
EOF
}

# Serialise commands touching the same directory (e.g. parallel pytest workers
# all calling "start"); flock is util-linux, so skip quietly where it is absent.
# Two fixed fds because start holds the data-dir lock while fetch takes the
# cache lock; the broker must not inherit either (see cmd_start).
lock_data() {
  mkdir -p "$DATA_DIR"
  command -v flock >/dev/null 2>&1 || return 0
  exec 9>"$DATA_DIR/.lock"
  flock 9
}
lock_cache() {
  mkdir -p "$CACHE_DIR"
  command -v flock >/dev/null 2>&1 || return 0
  exec 8>"$CACHE_DIR/.fetch.lock"
  flock 8
}

# The JVM spends ~1.5 s of a ~5 s start loading classes. The first broker run
# records them into an archive when it exits (written on a clean stop); later
# runs map it. A stale or foreign archive is only a warning to the JVM, which
# then loads classes as usual. KAFKA_LOCAL_CDS=0 turns this off.
# Prints exactly one JVM option (-Xshare:auto is the JVM's default, a no-op),
# so callers can quote it and paths with spaces survive.
cds_opt() {
  if [[ "${KAFKA_LOCAL_CDS:-1}" == 1 && -s "$CDS_ARCHIVE" ]]; then
    echo "-XX:SharedArchiveFile=$CDS_ARCHIVE"
  elif [[ "${KAFKA_LOCAL_CDS:-1}" == 1 && "${1:-}" == record ]]; then
    echo "-XX:ArchiveClassesAtExit=$CDS_DUMP"
  else
    echo "-Xshare:auto"
  fi
}

# After the broker exited cleanly: publish its archive into the cache. Copy +
# rename, so a concurrently starting JVM never maps a half-written file.
cds_publish() {
  [[ -s "$CDS_DUMP" ]] || return 0
  if [[ ! -s "$CDS_ARCHIVE" ]] && cp "$CDS_DUMP" "$CDS_ARCHIVE.$$" 2>/dev/null; then
    mv -f "$CDS_ARCHIVE.$$" "$CDS_ARCHIVE"
  fi
  rm -f "$CDS_DUMP" "$CDS_ARCHIVE.$$"
}

java_cp() {
  "$JAVA" -Xmx256m "$(cds_opt)" -cp "$LIBS_DIR/*" \
    -Dlog4j2.configurationFile="$HERE/log4j2.properties" -Dkafka.logs.dir="$DATA_DIR" "$@"
}

# --- fetch -----------------------------------------------------------------

cmd_fetch() {
  [[ -f "$FETCH_MARKER" && -d "$LIBS_DIR" ]] && return 0
  lock_cache
  # Another process may have finished the download while we waited.
  [[ -f "$FETCH_MARKER" && -d "$LIBS_DIR" ]] && return 0
  command -v mvn >/dev/null 2>&1 || die "mvn (Maven) is needed to download Kafka"
  command -v "$JAVA" >/dev/null 2>&1 || die "java (17+) is needed to run Kafka"

  say "downloading Kafka $KAFKA_VERSION jars into $LIBS_DIR (one time)"
  rm -rf "$LIBS_DIR"
  # runtime scope = compile + runtime deps: everything kafka.Kafka needs.
  if ! mvn -q -B -Dstyle.color=never -f "$HERE/pom.xml" \
      -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies \
      -DoutputDirectory="$LIBS_DIR" -DincludeScope=runtime \
      >"$CACHE_DIR/fetch.log" 2>&1; then
    tail -n 40 "$CACHE_DIR/fetch.log" >&2
    die "Maven could not download Kafka $KAFKA_VERSION (full log: $CACHE_DIR/fetch.log)"
  fi
  # Only a complete download gets the marker; an interrupted one is redone.
  echo "$KAFKA_VERSION" >"$FETCH_MARKER"
  say "fetched $(find "$LIBS_DIR" -name '*.jar' | wc -l | tr -d ' ') jars"
}

# --- probes ----------------------------------------------------------------

# Is something accepting TCP connections on 127.0.0.1:$1? (bash's /dev/tcp)
tcp_open() {
  local cmd="exec 3<>/dev/tcp/$HOST/$1"
  if command -v timeout >/dev/null 2>&1; then
    timeout 3 bash -c "$cmd" 2>/dev/null
  else
    bash -c "$cmd" 2>/dev/null
  fi
}

# Pick a Python for the Kafka-level probe: KAFKA_LOCAL_PYTHON if set, else one
# with confluent_kafka if there is one (a real metadata request), otherwise
# any python3 (stdlib probe).
PYTHON="${KAFKA_LOCAL_PYTHON:-}"
find_python() {
  [[ -n "$PYTHON" ]] && return 0
  local c first=""
  for c in "${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/python}" "$REPO_ROOT/.venv/bin/python" python3; do
    if [[ -z "$c" ]] || ! command -v "$c" >/dev/null 2>&1; then continue; fi
    [[ -n "$first" ]] || first="$c"
    if "$c" -c 'import confluent_kafka' >/dev/null 2>&1; then PYTHON="$c"; return 0; fi
  done
  PYTHON="${first:-none}"
}

# Does 127.0.0.1:$1 answer as a Kafka broker? First a raw ApiVersions request
# (stdlib only; any Kafka listener answers it, even a SASL one before
# authentication; anything else fails fast). Then, if confluent_kafka is
# importable, a metadata request: the broker is really serving. No Python at
# all: an open port has to do.
kafka_answers() {
  local port="$1"
  tcp_open "$port" || return 1
  find_python
  [[ "$PYTHON" == none ]] && return 0
  "$PYTHON" - "$HOST" "$port" 2>/dev/null <<'PY'
import socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
# ApiVersions v0: header = api_key 18, version 0, correlation id, client id.
client = b"kafka-local"
req = struct.pack(">hhih", 18, 0, 4242, len(client)) + client
with socket.create_connection((host, port), timeout=3) as s:
    s.sendall(struct.pack(">i", len(req)) + req)
    head = s.recv(10, socket.MSG_WAITALL)
size, corr, err = struct.unpack(">iih", head)
# 35 = UNSUPPORTED_VERSION: still a Kafka broker talking.
if corr != 4242 or err not in (0, 35):
    sys.exit(1)
try:
    from confluent_kafka.admin import AdminClient
except ImportError:
    sys.exit(0)
admin = AdminClient({"bootstrap.servers": f"{host}:{port}", "log_level": 0})
admin.list_topics(timeout=5)  # raises KafkaException if no answer
PY
}

# Is $1 the pid of the broker started from this data dir?
our_broker() {
  local pid="$1" cmdline
  if [[ ! "$pid" =~ ^[0-9]+$ ]] || ! kill -0 "$pid" 2>/dev/null; then return 1; fi
  if [[ -r "/proc/$pid/cmdline" ]]; then
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline")"
  else
    cmdline="$(ps -p "$pid" -o command= 2>/dev/null || true)"
  fi
  # Guards against a recycled pid belonging to something else.
  [[ "$cmdline" == *kafka.Kafka*"$CONFIG"* ]]
}

# The port the data dir was formatted for (= what its broker listens on), which
# may differ from $PORT when the caller's environment changed.
stamped_port() {
  sed -n 's/^port=\([0-9]*\) .*/\1/p' "$STAMP" 2>/dev/null || true
}

running_pid() {
  local pid
  [[ -f "$PID_FILE" ]] || return 1
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  our_broker "$pid" || return 1
  echo "$pid"
}

# --- start -----------------------------------------------------------------

write_config() {
  cat >"$CONFIG" <<EOF
# Generated by kafka-local.sh on every start; edits are overwritten.
# Use KAFKA_EXTRA_PROPERTIES to add or override settings.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA_DIR/logs

# One broker: every internal topic must live with a single replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1

# Fast start: few internal partitions, no rebalance delay for the first consumer.
group.initial.rebalance.delay.ms=0
offsets.topic.num.partitions=6
transaction.state.log.num.partitions=6
share.coordinator.state.topic.num.partitions=1
num.partitions=1
# Topics are created explicitly (as in production), never by a typo.
auto.create.topics.enable=false
# The log cleaner allocates this buffer up front (default 128 MB); a dev broker
# needs far less.
log.cleaner.dedupe.buffer.size=16777216
EOF
  if [[ -n "${KAFKA_EXTRA_PROPERTIES:-}" ]]; then
    # Appended last: for a repeated key, the last line wins.
    printf '\n# From KAFKA_EXTRA_PROPERTIES\n%s\n' "$KAFKA_EXTRA_PROPERTIES" >>"$CONFIG"
  fi
}

# Format the storage once. The controller's own address is recorded in the
# KRaft metadata at format time, so a data dir formatted for other ports is
# wiped and formatted again.
format_storage() {
  local want="port=$PORT controller_port=$CONTROLLER_PORT"
  if [[ -f "$DATA_DIR/logs/meta.properties" && -f "$STAMP" ]]; then
    [[ "$(cat "$STAMP")" == "$want" ]] && return 0
    say "data dir was formatted for '$(cat "$STAMP")', now '$want': wiping it"
  fi
  rm -rf "$DATA_DIR/logs"
  local cluster_id
  cluster_id="$(java_cp kafka.tools.StorageTool random-uuid | tail -n 1)" ||
    die "kafka.tools.StorageTool random-uuid failed"
  [[ -n "$cluster_id" ]] || die "kafka.tools.StorageTool random-uuid printed nothing"
  if ! java_cp kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$CONFIG" \
      >"$DATA_DIR/format.log" 2>&1; then
    cat "$DATA_DIR/format.log" >&2
    die "formatting $DATA_DIR/logs failed"
  fi
  echo "$want" >"$STAMP"
}

show_logs() {
  local f
  for f in "$BROKER_LOG" "$CONSOLE_LOG"; do
    [[ -s "$f" ]] || continue
    printf -- '----- last 40 lines of %s -----\n' "$f" >&2
    tail -n 40 "$f" >&2
  done
}

cmd_start() {
  lock_data
  local pid
  if pid="$(running_pid)"; then
    local port
    port="$(stamped_port)"
    if [[ -n "$port" && "$port" != "$PORT" ]]; then
      die "the broker from $DATA_DIR (pid $pid) listens on port $port, not $PORT; stop it first"
    fi
    say "already running (pid $pid) on $HOST:$PORT, data in $DATA_DIR"
    return 0
  fi

  # Port taken by someone else: reuse it if it is a Kafka broker (e.g. a
  # developer's own), refuse otherwise.
  if tcp_open "$PORT"; then
    if kafka_answers "$PORT"; then
      say "$HOST:$PORT is already served by another Kafka broker (not started from $DATA_DIR); using it"
      return 0
    fi
    die "$HOST:$PORT is in use by something that does not answer as Kafka; set KAFKA_PORT"
  fi
  if tcp_open "$CONTROLLER_PORT"; then
    die "controller port $HOST:$CONTROLLER_PORT is in use; set KAFKA_CONTROLLER_PORT"
  fi

  cmd_fetch
  command -v "$JAVA" >/dev/null 2>&1 || die "java (17+) is needed to run Kafka"
  write_config
  format_storage
  # Rotate the previous run's logs rather than mixing them into this one.
  [[ -s "$BROKER_LOG" ]] && mv -f "$BROKER_LOG" "$BROKER_LOG.prev"
  rm -f "$CDS_DUMP"
  : >"$CONSOLE_LOG"

  local begin=$SECONDS
  # nohup + </dev/null + redirected output: the broker must not hold the
  # caller's terminal or pipes (a pytest subprocess.run would hang on them),
  # nor our lock fds (the next start/stop would wait for it forever).
  # setsid: Ctrl-C in the calling shell must not reach the broker.
  local setsid=""
  if command -v setsid >/dev/null 2>&1; then setsid=setsid; fi
  # shellcheck disable=SC2086  # setsid, HEAP_OPTS, KAFKA_OPTS: word lists
  $setsid nohup "$JAVA" $HEAP_OPTS -Djava.awt.headless=true "$(cds_opt record)" ${KAFKA_OPTS:-} \
    -Dlog4j2.configurationFile="$HERE/log4j2.properties" -Dkafka.logs.dir="$DATA_DIR" \
    -cp "$LIBS_DIR/*" kafka.Kafka "$CONFIG" </dev/null >"$CONSOLE_LOG" 2>&1 8>&- 9>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"
  say "starting Kafka $KAFKA_VERSION (pid $pid) on $HOST:$PORT, data in $DATA_DIR"

  local deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      show_logs
      die "the broker exited during startup"
    fi
    if kafka_answers "$PORT"; then
      say "ready on $HOST:$PORT after $((SECONDS - begin)) s (log: $BROKER_LOG)"
      return 0
    fi
    sleep 0.5
  done
  show_logs
  # Leave nothing half-started behind.
  stop_pid "$pid"
  die "the broker did not answer on $HOST:$PORT within $START_TIMEOUT s (KAFKA_START_TIMEOUT)"
}

# --- stop / status / reset ---------------------------------------------------

# SIGTERM lets Kafka shut down cleanly (no log recovery on the next start);
# SIGKILL only if it hangs.
stop_pid() {
  local pid="$1" deadline=$((SECONDS + STOP_TIMEOUT))
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    say "pid $pid still alive after $STOP_TIMEOUT s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    rm -f "$CDS_DUMP"  # possibly cut short
  fi
  rm -f "$PID_FILE"
  cds_publish
}

cmd_stop() {
  [[ -d "$DATA_DIR" ]] || { say "not running (no $DATA_DIR)"; return 0; }
  lock_data
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    say "not running (data in $DATA_DIR)"
    return 0
  fi
  say "stopping pid $pid"
  stop_pid "$pid"
  say "stopped"
}

cmd_status() {
  local pid port
  if pid="$(running_pid)"; then
    port="$(stamped_port)"
    port="${port:-$PORT}"
    if kafka_answers "$port"; then
      say "running (pid $pid) on $HOST:$port, data in $DATA_DIR"
    else
      say "running (pid $pid) but not answering on $HOST:$port yet, data in $DATA_DIR"
    fi
    return 0
  fi
  if tcp_open "$PORT"; then
    say "stopped (no broker from $DATA_DIR; but something else listens on $HOST:$PORT)"
  else
    say "stopped"
  fi
  return 1
}

cmd_reset() {
  cmd_stop
  [[ -d "$DATA_DIR" ]] || return 0
  # Only delete what we created: a mistyped KAFKA_LOCAL_DIR must not cost
  # someone their home directory.
  case "$(cd "$DATA_DIR" && pwd)" in
    / | "$HOME" | "$REPO_ROOT") die "refusing to delete $DATA_DIR" ;;
  esac
  if [[ ! -f "$STAMP" && ! -f "$CONFIG" ]] &&
      [[ -n "$(find "$DATA_DIR" -mindepth 1 -maxdepth 1 ! -name .lock | head -n 1)" ]]; then
    die "$DATA_DIR does not look like a kafka-local data dir; not deleting it"
  fi
  rm -rf "$DATA_DIR"
  say "deleted $DATA_DIR"
}

case "${1:-}" in
  fetch) cmd_fetch; say "jars in $LIBS_DIR" ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  reset) cmd_reset ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
