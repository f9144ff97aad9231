#!/usr/bin/env bash
# Starts, idempotently, every server the test suite needs, installing it
# first on a machine that lacks it. Safe to run again and again; exits
# non-zero if a server cannot be brought up, so the suite fails loudly
# instead of skipping.
#
#   redis      127.0.0.1:6379                 single node
#   cluster    127.0.0.1:7000-7005            3 masters, 3 replicas
#   sentinel   master 6380, replica 6381, sentinels 26379-26381 ("mymaster")
#   memcached  127.0.0.1:11211 and :11212     two servers, for key spreading
#   chromium   /usr/bin/chromium, chromedriver   installed only (the browser
#              test starts its own chromedriver)
#   flask      a virtualenv with Flask and Flask-Session (pinned), installed
#              only (the interop tests start the Flask app)
set -euo pipefail

RUN_DIR=${SESSION_TEST_RUN_DIR:-/tmp/session-test-servers}
mkdir -p "$RUN_DIR"

log() { printf '  %s\n' "$*"; }

apt_updated=0
need() { # need COMMAND PACKAGE...
    command -v "$1" >/dev/null 2>&1 && return 0
    log "installing $2"
    if [ "$apt_updated" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${@:2}" >/dev/null
}

wait_for() { # wait_for DESCRIPTION COMMAND...
    local what=$1; shift
    for _ in $(seq 1 100); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "services: $what did not come up" >&2
    return 1
}

redis_up() { [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ]; }

start_redis() { # start_redis PORT [extra redis-server args...]
    local port=$1; shift
    redis_up "$port" && return 0
    mkdir -p "$RUN_DIR/redis-$port"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
        --dir "$RUN_DIR/redis-$port" --logfile "$RUN_DIR/redis-$port.log" "$@"
    wait_for "redis on $port" redis_up "$port"
}

need redis-server redis-server redis-tools
need redis-cli redis-tools
need haproxy haproxy

# The single node (the machine usually runs it already).
start_redis 6379
log "redis 6379 up"

# The cluster: six nodes, then one `cluster create` the first time.
for port in 7000 7001 7002 7003 7004 7005; do
    start_redis "$port" --cluster-enabled yes --cluster-config-file "nodes-$port.conf" \
        --cluster-node-timeout 2000
done
if ! redis-cli -p 7000 cluster info 2>/dev/null | grep -q 'cluster_state:ok'; then
    if [ "$(redis-cli -p 7000 cluster info | sed -n 's/^cluster_known_nodes:\([0-9]*\).*/\1/p')" = 1 ]; then
        redis-cli --cluster create 127.0.0.1:7000 127.0.0.1:7001 127.0.0.1:7002 \
            127.0.0.1:7003 127.0.0.1:7004 127.0.0.1:7005 --cluster-replicas 1 --cluster-yes >/dev/null
    fi
    wait_for "the redis cluster" sh -c "redis-cli -p 7000 cluster info | grep -q cluster_state:ok"
fi
log "redis cluster 7000-7005 up"

# Sentinel: whichever of 6380/6381 the sentinels name as master stays it.
start_redis 6380
start_redis 6381
master_port=6380
for port in 26379 26380 26381; do
    if redis_up "$port"; then
        named=$(redis-cli -p "$port" sentinel get-master-addr-by-name mymaster 2>/dev/null | sed -n 2p)
        [ -n "$named" ] && master_port=$named
    fi
done
replica_port=$(( master_port == 6380 ? 6381 : 6380 ))
if [ "$(redis-cli -p "$replica_port" info replication | tr -d '\r' | sed -n 's/^role://p')" != slave ]; then
    redis-cli -p "$replica_port" replicaof 127.0.0.1 "$master_port" >/dev/null
fi
for port in 26379 26380 26381; do
    redis_up "$port" && continue
    conf="$RUN_DIR/sentinel-$port.conf"
    cat > "$conf" <<CONF
port $port
bind 127.0.0.1
daemonize yes
logfile $RUN_DIR/sentinel-$port.log
dir $RUN_DIR
sentinel resolve-hostnames no
sentinel monitor mymaster 127.0.0.1 $master_port 2
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 3000
sentinel parallel-syncs mymaster 1
CONF
    redis-server "$conf" --sentinel
    wait_for "sentinel on $port" redis_up "$port"
done
log "redis sentinel up (master on $master_port)"

# Memcached: two servers.
need memcached memcached
# The tests read stores with their own clients (ids hashed at rest).
need sqlite3 sqlite3
for port in 11211 11212; do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        memcached -d -u root -l 127.0.0.1 -p "$port" -m 64 -P "$RUN_DIR/memcached-$port.pid"
        wait_for "memcached on $port" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
    fi
done
log "memcached 11211, 11212 up"

# PostgreSQL on 127.0.0.1:5432 and MariaDB on 127.0.0.1:3306, each with a
# `test` database, for the SQL store (trust auth / root without a password,
# as the machine sets them up; started here if they are down).
SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
port_up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_long() { # wait_long DESCRIPTION SECONDS COMMAND...
    local what=$1 seconds=$2; shift 2
    for _ in $(seq 1 $((seconds * 5))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "services: $what did not come up" >&2
    return 1
}

need psql postgresql postgresql-client
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    pg_version=$(ls /etc/postgresql | sort -V | tail -1)
    pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start
    wait_long "postgresql on 5432" 30 pg_isready -q -h 127.0.0.1 -p 5432
fi
if [ "$(psql -h 127.0.0.1 -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'test'")" != 1 ]; then
    psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE test"
fi
log "postgresql 5432 up (database test)"

need mariadbd mariadb-server mariadb-client
need mysql mariadb-client
if ! mariadb-admin -h 127.0.0.1 -u root ping >/dev/null 2>&1; then
    install -d -o mysql -g mysql /run/mysqld
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    wait_long "mariadb on 3306" 60 mariadb-admin -h 127.0.0.1 -u root ping
fi
mariadb -h 127.0.0.1 -u root -e "CREATE DATABASE IF NOT EXISTS test"
log "mariadb 3306 up (database test)"

# A MongoDB-compatible server on 127.0.0.1:27017 for the MongoDB store:
# Debian has no MongoDB, so SecantusDB (PyPI) runs in memory from a
# virtualenv, through scripts/mongodb_server.py.
MONGO_VENV=${SESSION_TEST_VENV:-/opt/session-test-venv}
SECANTUS=SecantusDB==0.7.0b3
if ! port_up 27017; then
    if ! "$MONGO_VENV/bin/pip" show SecantusDB 2>/dev/null | grep -qx "Version: ${SECANTUS#*==}"; then
        log "installing $SECANTUS into $MONGO_VENV"
        python3 -m venv "$MONGO_VENV"
        "$MONGO_VENV/bin/pip" install -q --disable-pip-version-check "$SECANTUS"
    fi
    setsid nohup "$MONGO_VENV/bin/python" "$SCRIPT_DIR/mongodb_server.py" \
        --host 127.0.0.1 --port 27017 >"$RUN_DIR/mongodb.log" 2>&1 </dev/null &
    echo $! >"$RUN_DIR/mongodb.pid"
    if ! wait_long "mongodb (SecantusDB) on 27017" 60 port_up 27017; then
        cat "$RUN_DIR/mongodb.log" >&2
        exit 1
    fi
fi
log "mongodb (SecantusDB) 27017 up"

# Flask 3.1 and Flask-Session 0.8, pinned in scripts/flask-requirements.txt,
# for the interop tests (examples/quickstart/tests/flask.rs), which start
# the Flask app themselves with this virtualenv's Python.
FLASK_VENV=${SESSION_FLASK_VENV:-/opt/session-flask-venv}
FLASK_REQUIREMENTS="$SCRIPT_DIR/flask-requirements.txt"
if ! cmp -s "$FLASK_REQUIREMENTS" "$FLASK_VENV/requirements.txt" 2>/dev/null; then
    log "installing Flask and Flask-Session into $FLASK_VENV"
    python3 -m venv "$FLASK_VENV"
    "$FLASK_VENV/bin/pip" install -q --disable-pip-version-check -r "$FLASK_REQUIREMENTS"
    cp "$FLASK_REQUIREMENTS" "$FLASK_VENV/requirements.txt"
fi
"$FLASK_VENV/bin/python" -c "import flask_session, msgspec, redis, pymemcache, pymongo, flask_sqlalchemy, psycopg2, pymysql"
log "flask and flask-session in $FLASK_VENV"

# Headless Chromium and chromedriver for examples/quickstart/tests/browser.rs,
# installed only: the test starts chromedriver on a port of its own.
need chromium chromium chromium-driver
need chromedriver chromium-driver
log "chromium and chromedriver installed"
