#!/usr/bin/env bash
# Run a 3-node Hubbub cluster on this machine with its own Redis and PostgreSQL (docs/cluster.md).
#
#   scripts/cluster.sh            # nodes on :8081 :8082 :8083, Redis on :16379, PostgreSQL on :15432
#   NODES=5 BASE_PORT=9000 scripts/cluster.sh
#
# Everything lives in $CLUSTER_DIR (default ./cluster-data); Ctrl-C stops it all. Never uses the standard
# Redis/PostgreSQL ports, so it does not disturb services already running there.
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=${NODES:-3}
BASE_PORT=${BASE_PORT:-8081}
REDIS_PORT=${REDIS_PORT:-16379}
PG_PORT=${PG_PORT:-15432}
DIR=$(mkdir -p "${CLUSTER_DIR:-./cluster-data}" && cd "${CLUSTER_DIR:-./cluster-data}" && pwd)
HUBBUB=${HUBBUB:-$( [ -x .venv/bin/hubbub ] && echo .venv/bin/hubbub || echo hubbub )}

pg_bin() {
  for d in /usr/local/bin /usr/lib/postgresql/*/bin; do [ -x "$d/$1" ] && { echo "$d/$1"; return; }; done
  echo "PostgreSQL's $1 not found (apt-get install postgresql)" >&2; exit 1
}
command -v redis-server >/dev/null || { echo "redis-server not found (apt-get install redis-server)" >&2; exit 1; }
AS_PG=()
if [ "$(id -u)" = 0 ]; then AS_PG=(runuser -u postgres --); fi   # initdb refuses to run as root

pids=()
cleanup() {
  echo "stopping the cluster"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "${AS_PG[@]}" "$(pg_bin pg_ctl)" -D "$DIR/pg" -m fast -w stop >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

# -- Redis: no persistence; the nodes rebuild their state if it restarts empty --------------------------
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$DIR" \
  --loglevel warning --logfile "$DIR/redis.log" &
pids+=($!)

# -- PostgreSQL ---------------------------------------------------------------------------------------
if [ ! -d "$DIR/pg" ]; then
  mkdir -p "$DIR/pg" && [ "$(id -u)" = 0 ] && chown postgres "$DIR" "$DIR/pg"
  "${AS_PG[@]}" "$(pg_bin initdb)" -D "$DIR/pg" -U postgres --auth=trust -E UTF8 >/dev/null
fi
"${AS_PG[@]}" "$(pg_bin pg_ctl)" -D "$DIR/pg" -l "$DIR/pg.log" -w \
  -o "-p $PG_PORT -k $DIR -c listen_addresses=127.0.0.1" start >/dev/null
"$(pg_bin psql)" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qAtc "SELECT 1 FROM pg_database WHERE datname='hubbub'" \
  | grep -q 1 || "$(pg_bin psql)" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE hubbub"

# -- nodes: one shared JWT secret, one node id each ------------------------------------------------------
[ -f "$DIR/jwt-secret" ] || (umask 077; head -c 48 /dev/urandom | base64 | tr -d '\n' > "$DIR/jwt-secret")
export HUBBUB_JWT_SECRET; HUBBUB_JWT_SECRET=$(cat "$DIR/jwt-secret")
export HUBBUB_REDIS="redis://127.0.0.1:$REDIS_PORT/0"
export HUBBUB_DATABASE="postgresql://postgres@127.0.0.1:$PG_PORT/hubbub"
"$HUBBUB" migrate   # once, before the nodes start together
for i in $(seq 1 "$NODES"); do
  port=$((BASE_PORT + i - 1))
  "$HUBBUB" serve --host 127.0.0.1 --port "$port" --node-id "n$i" --data-dir "$DIR/n$i" \
    > "$DIR/n$i.log" 2>&1 &
  pids+=($!)
  echo "node n$i: http://127.0.0.1:$port  (log: $DIR/n$i.log)"
done
echo "Redis $HUBBUB_REDIS, PostgreSQL $HUBBUB_DATABASE; Ctrl-C to stop"
wait -n "${pids[@]}"
echo "a process of the cluster exited; see the logs in $DIR" >&2
