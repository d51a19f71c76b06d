# shellcheck shell=bash
# scripts/lib/tls.sh: TLS for the private servers of scripts/lib/infra.sh (sourced after it), for
# `scripts/up --tls`. Certificates come from `investctl dev-certs` (a development CA in DIR:
# ca.pem, server.pem, server-key.pem, for localhost / 127.0.0.1 / ::1).
#
#   tls_nats_start DIR   start a TLS-only private nats-server with JetStream beside the plaintext
#                        one (the tests keep using that): 127.0.0.1:${INVEST_NATS_TLS_PORT:-54223},
#                        store .dev/nats-tls/store, log .dev/logs/nats-tls.log; reused when it
#                        is already up. Exports NATS_URL=tls://localhost:<port> and
#                        NATS_TLS_CA_FILE=DIR/ca.pem; sets TLS_STARTED_NATS=1 if it started it.
#   tls_nats_stop        stop it.
#   tls_pg_enable DIR    turn ssl on in the running private PostgreSQL (its data directory gets
#                        the server certificate and an `invest-tls.conf` included by
#                        invest-dev.conf), then reload it. Plaintext connections stay possible
#                        (the tests use them); verify-full ones can be made to `localhost`.
#   tls_pg_ready         true once it answers a TLS request.

TLS_NATS_PORT="${INVEST_NATS_TLS_PORT:-54223}"
TLS_NATS_DIR="$INFRA_DEV_DIR/nats-tls"
TLS_NATS_PIDFILE="$TLS_NATS_DIR/nats-server.pid"
TLS_NATS_LOG="$INFRA_LOG_DIR/nats-tls.log"
TLS_STARTED_NATS=0

_tls_nats_pid() {
  local pid
  pid="$(cat "$TLS_NATS_PIDFILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

tls_nats_start() {
  local dir="$1"
  export NATS_URL="tls://localhost:$TLS_NATS_PORT" NATS_TLS_CA_FILE="$dir/ca.pem"
  if _tls_nats_pid >/dev/null && _infra_tcp_open 127.0.0.1 "$TLS_NATS_PORT"; then
    return 0
  fi
  mkdir -p "$TLS_NATS_DIR/store" "$INFRA_LOG_DIR" || return 1
  cat >"$TLS_NATS_DIR/nats.conf" <<CONF || return 1
# Written by scripts/lib/tls.sh: the dev stack's TLS-only NATS (scripts/up --tls).
listen: 127.0.0.1:$TLS_NATS_PORT
jetstream { store_dir: "$TLS_NATS_DIR/store" }
tls {
  cert_file: "$dir/server.pem"
  key_file: "$dir/server-key.pem"
  ca_file: "$dir/ca.pem"
  timeout: 2
}
pid_file: "$TLS_NATS_PIDFILE"
log_file: "$TLS_NATS_LOG"
CONF
  _infra_log "NATS: starting a TLS-only nats-server on 127.0.0.1:$TLS_NATS_PORT (log $TLS_NATS_LOG)"
  setsid -f "$NATS_SERVER_BIN" -c "$TLS_NATS_DIR/nats.conf" </dev/null >>"$INFRA_LOG_DIR/nats-tls.stdout.log" 2>&1 ||
    { _infra_err "could not start $NATS_SERVER_BIN"; return 1; }
  _infra_wait_for 30 "the TLS nats-server on 127.0.0.1:$TLS_NATS_PORT" _infra_tcp_open 127.0.0.1 "$TLS_NATS_PORT" ||
    { tail -n 30 "$TLS_NATS_LOG" >&2; return 1; }
  TLS_STARTED_NATS=1
}

tls_nats_stop() {
  local pid
  pid="$(_tls_nats_pid)" || return 0
  _infra_log "NATS: stopping the TLS nats-server (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  _infra_wait_for 20 "the TLS nats-server to stop" _infra_pid_gone "$pid"
}

tls_pg_enable() {
  local dir="$1" data pid
  data="$(_infra_pg_running_data_dirs | head -n 1)"
  [[ -n "$data" ]] || { _infra_err "no private PostgreSQL is running"; return 1; }
  install -m 0644 "$dir/server.pem" "$data/invest-tls.pem" || return 1
  install -m 0600 "$dir/server-key.pem" "$data/invest-tls-key.pem" || return 1
  cat >"$data/invest-tls.conf" <<CONF || return 1
# Written by scripts/lib/tls.sh (scripts/up --tls): TLS with the development CA's certificate.
ssl = on
ssl_cert_file = 'invest-tls.pem'
ssl_key_file = 'invest-tls-key.pem'
CONF
  if [[ "$(id -u)" == 0 ]]; then
    chown "$INFRA_PG_OS_USER:" "$data/invest-tls.pem" "$data/invest-tls-key.pem" "$data/invest-tls.conf" || return 1
  fi
  if ! grep -q "^include_if_exists = 'invest-tls.conf'" "$data/postgresql.conf"; then
    printf "include_if_exists = 'invest-tls.conf'\n" >>"$data/postgresql.conf" || return 1
  fi
  pid="$(head -n 1 "$data/postmaster.pid")"
  _infra_log "PostgreSQL: ssl on with the development certificate (reloading pid $pid)"
  kill -HUP "$pid" || return 1
  _infra_wait_for 20 "PostgreSQL to offer TLS" tls_pg_ready
}

# tls_pg_ready: true once the private PostgreSQL answers a TLS request (SSLRequest -> 'S').
tls_pg_ready() {
  python3 - "$INFRA_PG_HOST" "$INFRA_PG_PORT" <<'PY'
import socket, struct, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2) as s:
    s.sendall(struct.pack("!II", 8, 80877103))
    sys.exit(0 if s.recv(1) == b"S" else 1)
PY
}
