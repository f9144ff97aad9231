#!/usr/bin/env bash
# Many instances on one Redis Cluster, behind a load balancer, on this
# machine (loopback only):
#
#   redis      127.0.0.1:7100-7108   a private Redis Cluster: 3 masters with
#                                    2 replicas each (not the test suite's
#                                    7000-7005), so that with
#                                    SESSION_REDIS_MIN_REPLICAS=1 a shard keeps
#                                    taking writes after its master dies
#   quickstart 127.0.0.1:8101-8103   three instances on that cluster
#   haproxy    127.0.0.1:8100        round robin, no stickiness, health checks;
#                                    each answer names its instance in X-Served-By
#              127.0.0.1:8199/stats  HAProxy's status page
#
# Then it shows, with curl and a cookie jar, a session created through the
# balancer on one instance being read, changed and logged out on the others.
#
#   scripts/cluster-demo.sh          start (or restart) it all, run the demo,
#                                    leave it running
#   scripts/cluster-demo.sh --check  the same, then stop everything; exits
#                                    non-zero if any step failed
#   scripts/cluster-demo.sh --stop   stop everything it started, wipe its data
#
# Idempotent: a rerun keeps a healthy cluster (starting any node that is
# down), rebuilds and restarts the instances and the balancer. Installs
# redis-server, redis-tools, haproxy and curl with apt-get if missing
# (as root). Everything lives under $SESSION_DEMO_RUN_DIR (default
# /tmp/session-cluster-demo): pid files, logs, the cluster's data, the
# cookie jar. The instances get this shell's environment (RUST_LOG,
# SESSION_LOCAL_CACHE, ... pass through) plus the keys set below; they run
# with SESSION_REDIS_MIN_REPLICAS=1 (a write is answered once a replica has
# it) unless the environment says otherwise, e.g.
#   SESSION_REDIS_MIN_REPLICAS=0 scripts/cluster-demo.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN_DIR=${SESSION_DEMO_RUN_DIR:-/tmp/session-cluster-demo}
REDIS_PORTS=(7100 7101 7102 7103 7104 7105 7106 7107 7108)
APP_PORTS=(8101 8102 8103)
LB_PORT=8100
STATS_PORT=8199
LB="http://127.0.0.1:$LB_PORT"

log() { printf '  %s\n' "$*"; }
die() {
    printf 'cluster-demo: %s\n' "$*" >&2
    exit 1
}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

MODE=demo
case "${1:-}" in
    "") ;;
    --check) MODE=check ;;
    --stop) MODE=stop ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        usage >&2
        exit 2
        ;;
esac
[ $# -le 1 ] || {
    usage >&2
    exit 2
}

mkdir -p "$RUN_DIR"
# One run at a time: a second one would race on the same pid files. (What
# it starts is started with 9>&-, so that no server keeps the lock.)
exec 9>"$RUN_DIR/lock"
flock -n 9 || die "another cluster-demo.sh is running (lock $RUN_DIR/lock)"

# --- processes, by pid file ----------------------------------------------

# alive PID: the process runs (a zombie, which an init that does not reap
# may leave behind, does not).
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) } # the state follows the command name, in parentheses
    [ -n "$stat" ] && [ "${stat:0:1}" != Z ]
}

# running NAME PIDFILE: the pid file names a live process called NAME (so a
# stale file whose pid was reused by something else is not ours).
running() {
    local pid
    [ -s "$2" ] || return 1
    pid=$(cat "$2")
    alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]
}

# stop NAME PIDFILE: TERM, then KILL after 5 s; removes the pid file.
stop() {
    local name=$1 file=$2 pid
    if running "$name" "$file"; then
        pid=$(cat "$file")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            kill -9 "$pid" 2>/dev/null || true
            sleep 0.2
        fi
        log "stopped $name ($(basename "$file" .pid), pid $pid)"
    fi
    rm -f "$file"
}

stop_all() {
    stop haproxy "$RUN_DIR/haproxy.pid"
    for port in "${APP_PORTS[@]}"; do
        stop quickstart "$RUN_DIR/quickstart-$port.pid"
    done
    for port in "${REDIS_PORTS[@]}"; do
        stop redis-server "$RUN_DIR/redis-$port.pid"
        rm -rf "$RUN_DIR/redis-$port"
    done
    rm -f "$RUN_DIR/cookies.txt"
}

# --check stops everything when it ends, however it ends.
if [ "$MODE" = check ]; then
    trap 'echo; echo "cluster-demo: --check: stopping everything"; stop_all' EXIT
fi

if [ "$MODE" = stop ]; then
    echo "cluster-demo: stopping"
    stop_all
    echo "cluster-demo: stopped (logs kept in $RUN_DIR)"
    exit 0
fi

# --- installing what is missing ------------------------------------------

apt_updated=0
apt_install() { # apt_install WHAT PACKAGE...: as root, from Debian's packages
    log "installing ${*:2}"
    [ "$(id -u)" = 0 ] || die "$1 is missing: run as root to install ${*:2}, or install it"
    if [ "$apt_updated" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${@:2}" >/dev/null
}
need() { # need COMMAND PACKAGE...
    command -v "$1" >/dev/null 2>&1 && return 0
    apt_install "$@"
    command -v "$1" >/dev/null 2>&1 || die "$1 still missing after installing ${*:2}"
}

echo "cluster-demo: checking tools"
need redis-server redis-server redis-tools
need redis-cli redis-tools
need haproxy haproxy
need curl curl
need cc gcc
need pkg-config pkg-config
# The quickstart's Redis client speaks TLS through OpenSSL (rediss://).
if ! pkg-config --exists openssl 2>/dev/null; then
    apt_install "OpenSSL's headers" libssl-dev
    pkg-config --exists openssl || die "OpenSSL still missing after installing libssl-dev"
fi
command -v cargo >/dev/null 2>&1 || die "cargo is missing (install Rust with rustup)"

port_up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # wait_for DESCRIPTION SECONDS COMMAND...
    local what=$1 seconds=$2 deadline
    shift 2
    deadline=$(($(date +%s) + seconds))
    until "$@" >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "cluster-demo: $what did not come up within ${seconds}s" >&2
            return 1
        fi
        sleep 0.1
    done
}

# --- the Redis Cluster ---------------------------------------------------

redis_up() { [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ]; }
cluster_field() { # cluster_field PORT FIELD
    redis-cli -p "$1" cluster info 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"
}
replication_field() { # replication_field PORT FIELD
    redis-cli -p "$1" info replication 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"
}
# Every node sees the whole cluster, and every replica has synced with its
# master (one that never did cannot take over: the cluster would stay down).
cluster_ok() {
    local port
    for port in "${REDIS_PORTS[@]}"; do
        [ "$(cluster_field "$port" cluster_state)" = ok ] || return 1
        [ "$(cluster_field "$port" cluster_known_nodes)" = ${#REDIS_PORTS[@]} ] || return 1
        case $(replication_field "$port" role) in
            master) ;;
            slave) [ "$(replication_field "$port" master_link_status)" = up ] || return 1 ;;
            *) return 1 ;;
        esac
    done
}

echo "cluster-demo: redis cluster on ${REDIS_PORTS[0]}-${REDIS_PORTS[-1]}"
for port in "${REDIS_PORTS[@]}"; do
    pidfile="$RUN_DIR/redis-$port.pid"
    if running redis-server "$pidfile" && redis_up "$port"; then
        continue
    fi
    port_up "$port" && die "port $port is taken by a program this script did not start"
    mkdir -p "$RUN_DIR/redis-$port"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" \
        --save "" --appendonly no --repl-diskless-sync-delay 0 \
        --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
        --dir "$RUN_DIR/redis-$port" --logfile "$RUN_DIR/redis-$port.log" \
        --pidfile "$pidfile" 9>&-
    wait_for "redis on $port" 10 redis_up "$port" || die "see $RUN_DIR/redis-$port.log"
    wait_for "the pid file of redis on $port" 5 running redis-server "$pidfile" ||
        die "see $RUN_DIR/redis-$port.log"
    log "redis $port started"
done

create_cluster() {
    local nodes=()
    for port in "${REDIS_PORTS[@]}"; do nodes+=("127.0.0.1:$port"); done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 2 --cluster-yes \
        >"$RUN_DIR/cluster-create.log" 2>&1 ||
        {
            cat "$RUN_DIR/cluster-create.log" >&2
            die "redis-cli --cluster create failed"
        }
}

fresh=1
for port in "${REDIS_PORTS[@]}"; do
    [ "$(cluster_field "$port" cluster_known_nodes)" = 1 ] || fresh=0
done
if [ "$fresh" = 1 ]; then
    create_cluster
    log "cluster created"
elif ! wait_for "the redis cluster" 15 cluster_ok; then
    # A half-made cluster (an interrupted first run, a node wiped by hand):
    # it holds demo sessions only, so make it anew.
    log "the cluster is not healthy: making it anew (its demo sessions are lost)"
    for _ in 1 2; do
        for port in "${REDIS_PORTS[@]}"; do
            redis-cli -p "$port" flushall >/dev/null 2>&1 || true
            redis-cli -p "$port" cluster reset hard >/dev/null 2>&1 || true
        done
    done
    create_cluster
fi
wait_for "the redis cluster (cluster_state:ok on every node)" 30 cluster_ok ||
    die "the cluster is not healthy: see $RUN_DIR/redis-*.log, or run $0 --stop and try again"
masters=0
for port in "${REDIS_PORTS[@]}"; do
    [ "$(replication_field "$port" role)" = master ] && masters=$((masters + 1))
done
log "cluster ok: $masters masters, $((${#REDIS_PORTS[@]} - masters)) replicas"

# --- three quickstart instances ------------------------------------------

echo "cluster-demo: building the quickstart (cargo build -p quickstart)"
(cd "$ROOT" && cargo build -p quickstart) || die "the build failed"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/quickstart"
[ -x "$BIN" ] || die "no binary at $BIN"

# One signing key for all three instances (an id signed by one must verify
# on the others), kept across reruns so that cookies stay valid.
if [ ! -s "$RUN_DIR/secret_key" ]; then
    (umask 077 && head -c 48 /dev/urandom | base64 -w0 >"$RUN_DIR/secret_key")
fi

SESSION_REDIS="redis+cluster://$(printf '127.0.0.1:%s,' "${REDIS_PORTS[@]}")"
SESSION_REDIS=${SESSION_REDIS%,}

MIN_REPLICAS=${SESSION_REDIS_MIN_REPLICAS:-1}
echo "cluster-demo: quickstart instances on ${APP_PORTS[*]} (SESSION_REDIS_MIN_REPLICAS=$MIN_REPLICAS)"
for port in "${APP_PORTS[@]}"; do
    pidfile="$RUN_DIR/quickstart-$port.pid"
    stop quickstart "$pidfile" >/dev/null
    port_up "$port" && die "port $port is taken by a program this script did not start"
    PORT=$port \
        SESSION_TYPE=redis \
        SESSION_REDIS=$SESSION_REDIS \
        SESSION_REDIS_MIN_REPLICAS=$MIN_REPLICAS \
        SESSION_STORE_TIMEOUT=${SESSION_STORE_TIMEOUT:-2} \
        SESSION_STORE_OUTAGE=fail \
        SESSION_USE_SIGNER=true \
        SECRET_KEY=$(cat "$RUN_DIR/secret_key") \
        setsid nohup "$BIN" >"$RUN_DIR/quickstart-$port.log" 2>&1 </dev/null 9>&- &
    echo $! >"$pidfile"
done
for port in "${APP_PORTS[@]}"; do
    pidfile="$RUN_DIR/quickstart-$port.pid"
    for _ in $(seq 1 300); do
        port_up "$port" && break
        alive "$(cat "$pidfile")" || break
        sleep 0.1
    done
    if ! running quickstart "$pidfile" || ! port_up "$port"; then
        tail -n 20 "$RUN_DIR/quickstart-$port.log" >&2
        die "the quickstart on $port did not start (log: $RUN_DIR/quickstart-$port.log)"
    fi
    log "quickstart $port up (log: $RUN_DIR/quickstart-$port.log)"
done

# --- HAProxy -------------------------------------------------------------

echo "cluster-demo: haproxy on $LB_PORT"
stop haproxy "$RUN_DIR/haproxy.pid" >/dev/null
for port in "$LB_PORT" "$STATS_PORT"; do
    port_up "$port" && die "port $port is taken by a program this script did not start"
done
{
    cat <<CFG
# Written by scripts/cluster-demo.sh.
global
    maxconn 1000

defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    # A connection refused (an instance just killed) is retried on another.
    retries 2
    option redispatch

frontend sessions
    bind 127.0.0.1:$LB_PORT
    default_backend quickstarts

backend quickstarts
    # Round robin, no stickiness: any instance serves any session.
    balance roundrobin
    # The instance itself, not the store: a request without a cookie makes
    # no store call (and /get of a missing key is 404).
    option httpchk GET /get?key=health
    http-check expect rstatus ^(200|404)\$
    default-server check inter 1s fall 2 rise 1
    # Which instance answered, for the demo.
    http-response set-header X-Served-By %s
CFG
    n=1
    for port in "${APP_PORTS[@]}"; do
        echo "    server app$n 127.0.0.1:$port"
        n=$((n + 1))
    done
    cat <<CFG

listen stats
    bind 127.0.0.1:$STATS_PORT
    stats enable
    stats uri /stats
    stats refresh 2s
CFG
} >"$RUN_DIR/haproxy.cfg"
haproxy -c -q -f "$RUN_DIR/haproxy.cfg" || die "haproxy rejects $RUN_DIR/haproxy.cfg"
setsid nohup haproxy -db -f "$RUN_DIR/haproxy.cfg" >"$RUN_DIR/haproxy.log" 2>&1 </dev/null 9>&- &
echo $! >"$RUN_DIR/haproxy.pid"

all_up() {
    [ "$(curl -sf "http://127.0.0.1:$STATS_PORT/stats;csv" |
        awk -F, '$1 == "quickstarts" && $2 ~ /^app/ && $18 == "UP"' | wc -l)" = ${#APP_PORTS[@]} ]
}
if ! wait_for "haproxy with three healthy instances" 15 all_up; then
    cat "$RUN_DIR/haproxy.log" >&2
    die "haproxy is not up (log: $RUN_DIR/haproxy.log)"
fi
log "haproxy up, app1-app3 healthy (status: http://127.0.0.1:$STATS_PORT/stats)"

# --- the demo ------------------------------------------------------------

JAR="$RUN_DIR/cookies.txt"
rm -f "$JAR"
failures=0
SERVED=()

# step METHOD PATH WANT_STATUS WANT_BODY [curl args...]: one request through
# the balancer with the cookie jar; prints the instance that answered.
step() {
    local method=$1 path=$2 want_status=$3 want_body=$4 status body server verdict
    shift 4
    status=$(curl -s -X "$method" -o "$RUN_DIR/body" -D "$RUN_DIR/headers" -w '%{http_code}' \
        --max-time 10 "$@" "$LB$path") || status="curl-error-$?"
    body=$(cat "$RUN_DIR/body" 2>/dev/null || true)
    server=$(tr -d '\r' <"$RUN_DIR/headers" 2>/dev/null | sed -n 's/^[Xx]-[Ss]erved-[Bb]y: //p')
    if [ "$status" = "$want_status" ] && [ "$body" = "$want_body" ]; then
        verdict=ok
    else
        verdict="FAIL (wanted $want_status \"$want_body\")"
        failures=$((failures + 1))
    fi
    printf '  %-6s %-28s -> %-5s %s %-18s %s\n' "$method" "$path" "${server:-?}" "$status" \
        "\"$body\"" "$verdict"
    [ -n "$server" ] && SERVED+=("$server")
    return 0
}

echo
echo "cluster-demo: one session, through $LB (round robin, no stickiness)"
echo "  (each line: request -> the instance that answered (X-Served-By), status, body)"
step POST "/login?user=ann" 200 "welcome ann" -c "$JAR"
CREATOR=${SERVED[0]:-?}
step GET "/get?key=user" 200 "ann" -b "$JAR" -c "$JAR"
step GET "/set?key=color&value=blue" 200 "ok" -b "$JAR" -c "$JAR"
step GET "/get?key=color" 200 "blue" -b "$JAR" -c "$JAR"
step GET "/visits" 200 "1" -b "$JAR" -c "$JAR"
step GET "/visits" 200 "2" -b "$JAR" -c "$JAR"
step GET "/visits" 200 "3" -b "$JAR" -c "$JAR"
OLD_COOKIE=$(awk '$6 == "session" { print $6 "=" $7 }' "$JAR")
[ -n "$OLD_COOKIE" ] || {
    echo "  FAIL: no session cookie in $JAR"
    failures=$((failures + 1))
}
step POST "/logout" 200 "bye" -b "$JAR" -c "$JAR"
step GET "/get?key=user" 404 "no such key" -b "$JAR" -c "$JAR"
echo "  the cookie from before the logout, sent again by hand:"
step GET "/get?key=user" 404 "no such key" -H "Cookie: $OLD_COOKIE"

distinct=$(printf '%s\n' "${SERVED[@]}" | sort -u | wc -l)
others=$(printf '%s\n' "${SERVED[@]}" | grep -vcx "$CREATOR" || true)
echo "  created on $CREATOR; $others of ${#SERVED[@]} requests served by the other instances;" \
    "$distinct instances in all"
if [ "$distinct" != ${#APP_PORTS[@]} ]; then
    echo "  FAIL: wanted all ${#APP_PORTS[@]} instances to serve the session"
    failures=$((failures + 1))
fi

if [ "$MODE" = check ]; then
    [ "$failures" = 0 ] || die "$failures step(s) failed"
    echo "cluster-demo: all steps passed"
    exit 0
fi

if [ "$MIN_REPLICAS" -ge 2 ]; then
    AFTER_KILL="writes to its slots answer 503 (SESSION_REDIS_MIN_REPLICAS=$MIN_REPLICAS: the new
  master has one replica left) until the killed node is back as its replica"
elif [ "$MIN_REPLICAS" = 1 ]; then
    AFTER_KILL="writes carry on, each still acknowledged by a replica (the new master
  keeps one of the two) before it is answered"
else
    AFTER_KILL="writes carry on (SESSION_REDIS_MIN_REPLICAS=0: a write answered just before
  the kill may be lost, as Redis replicates asynchronously)"
fi
cat <<USAGE

cluster-demo: running. Try it:
  curl -i -c $JAR -b $JAR -X POST '$LB/login?user=bob'
  curl -i -c $JAR -b $JAR '$LB/visits'    # again and again: X-Served-By turns
  curl -i -c $JAR -b $JAR '$LB/get?key=user'
  HAProxy's view of the instances: http://127.0.0.1:$STATS_PORT/stats

  Fail a Redis master over: find one, kill it; its replica takes over in ~3-4 s:
  redis-cli -p ${REDIS_PORTS[1]} cluster nodes | grep master
  kill -9 \$(cat $RUN_DIR/redis-PORT.pid)
  Then $AFTER_KILL.
  Rerun this script to bring the node back, once its replica has taken over
  (not sooner: a master back, empty, within the node timeout keeps its slots).

  Logs: $RUN_DIR/*.log
  Stop it all: $0 --stop
USAGE
[ "$failures" = 0 ] || die "$failures step(s) failed (left running to look at; $0 --stop stops it)"
