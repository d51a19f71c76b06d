# shellcheck shell=bash
# scripts/lib/web.sh: the dashboard's packages, for scripts/up and scripts/test-web (sourced).

# web_install ROOT: `npm ci` in ROOT/web when its lockfile is not the one last installed
# (web/package-lock.json pins every package; nothing is installed globally).
web_install() {
  local web="$1/web"
  command -v npm >/dev/null || { echo "npm not found: the dashboard needs Node 20.19+ and npm" >&2; return 1; }
  if ! cmp -s "$web/package-lock.json" "$web/node_modules/.installed-lock" 2>/dev/null; then
    echo "[web] npm ci in $web" >&2
    (cd "$web" && npm ci --no-audit --no-fund --loglevel=error) || return 1
    cp "$web/package-lock.json" "$web/node_modules/.installed-lock"
  fi
}
