#!/usr/bin/env bash
# Install everything the test suite needs and run it: lint, types, Python tests (unit, contract against
# SQLite/PostgreSQL/Redis, end-to-end, cluster, browser) and the web client's unit tests.
# This is the README's test command, and .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

# -- system binaries: real servers for the contract/cluster tests, Chromium for the browser test ------
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v turnserver >/dev/null || need+=(coturn)  # the call tests relay media through a real TURN server
{ command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || need+=(postgresql)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v npm >/dev/null || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing: ${need[*]} (install them, e.g. apt-get install ${need[*]}); the tests that need them will skip" >&2
  fi
fi

# -- Python -----------------------------------------------------------------------------------------
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PY" -m venv .venv
fi
say "installing hubbub with its test extras"
.venv/bin/python -m pip install -q --upgrade pip 2>/dev/null || true
.venv/bin/python -m pip install -q -e '.[test]'

say "ruff"
.venv/bin/ruff check src tests bench
say "mypy"
.venv/bin/mypy

# -- web client unit tests --------------------------------------------------------------------------
if [ -f web/package.json ] && command -v npm >/dev/null; then
  say "web client: vitest"
  (cd web && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; } && npm test --silent)
fi

say "pytest"
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=20 "$@"
status=$?
set -e
if [ $status -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit $status
