# Shared set-up for the two README commands: sourced, not run.
# Installs (Debian packages) and starts what is missing; idempotent and quiet when all is there.

SIDECARHUB_ROOT=${SIDECARHUB_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
VENV=$SIDECARHUB_ROOT/.venv
PY=$VENV/bin/python
PG_PORT=${SIDECARHUB_PG_PORT:-5432}
REDIS_PORT=${SIDECARHUB_REDIS_PORT:-6379}
# Separate names let two checkouts run their suites at once without sharing a database or queue.
PG_DB=${SIDECARHUB_PG_DB:-sidecarhub}

say() { echo "[sidecarhub] $*" >&2; }

apt_install() {
  # apt-get update once per call site; packages are only installed when missing.
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "${_SIDECARHUB_APT_UPDATED:-}" ]; then
    apt-get update -qq >/dev/null
    _SIDECARHUB_APT_UPDATED=1
  fi
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_system_tools() {
  local missing=()
  command -v openssl >/dev/null || missing+=(openssl)
  [ ${#missing[@]} -eq 0 ] || { say "installing ${missing[*]}"; apt_install "${missing[@]}"; }
}

ensure_browser() {
  # The browser tests (tests/console/) drive Debian's Chromium through Playwright; Playwright's
  # own browser download is never used (it needs more than the package registries).
  # fonts-liberation: readable text in the failure screenshots (chromium only recommends fonts).
  [ -x /usr/bin/chromium ] || { say "installing chromium (browser tests)"; apt_install chromium fonts-liberation; }
}

ensure_venv() {
  # Reinstall only when pyproject.toml or the lock file changed since the last install.
  local stamp=$VENV/.sidecarhub-installed
  local want; want=$(cat "$SIDECARHUB_ROOT/pyproject.toml" "$SIDECARHUB_ROOT/requirements.lock" | sha256sum | cut -d' ' -f1)
  if [ -x "$PY" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  say "installing Python dependencies into .venv"
  command -v python3.11 >/dev/null || command -v python3 >/dev/null || apt_install python3 python3-venv
  [ -x "$PY" ] || "$(command -v python3.11 || command -v python3)" -m venv "$VENV"
  local log=$VENV/pip-install.log
  if ! { "$PY" -m pip install -q --upgrade pip &&
         "$PY" -m pip install -q -c "$SIDECARHUB_ROOT/requirements.lock" -e "$SIDECARHUB_ROOT[dev]"; } >"$log" 2>&1; then
    cat "$log" >&2; say "ERROR: installing Python dependencies failed (log above)"; return 1
  fi
  echo "$want" > "$stamp"
}

ensure_redis() {
  if command -v redis-cli >/dev/null && redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    return 0
  fi
  command -v redis-server >/dev/null || { say "installing redis-server"; apt_install redis-server; }
  say "starting redis on 127.0.0.1:$REDIS_PORT"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes \
    --save "" --appendonly no --logfile /tmp/sidecarhub-redis.log
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  say "ERROR: redis did not start; see /tmp/sidecarhub-redis.log"; return 1
}

ensure_postgres() {
  # The Debian cluster, started by pg_ctlcluster; a role and database `sidecarhub` for the hub.
  if ! command -v pg_ctlcluster >/dev/null; then
    say "installing postgresql"; apt_install postgresql
  fi
  local version cluster
  read -r version cluster < <(pg_lsclusters -h | awk 'NR==1 {print $1, $2}')
  if [ -z "${version:-}" ]; then
    version=$(ls /usr/lib/postgresql | sort -n | tail -1); cluster=main
    say "creating postgresql cluster $version/$cluster"
    pg_createcluster -p "$PG_PORT" "$version" "$cluster" >/dev/null
  fi
  if ! pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1==v && $2==c' | grep -q online; then
    say "starting postgresql $version/$cluster"
    pg_ctlcluster "$version" "$cluster" start
  fi
  PG_PORT=$(pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1==v && $2==c {print $3}')
  for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && break; sleep 0.2; done
  su postgres -c "psql -q -p $PG_PORT -tAc \"SELECT 1 FROM pg_roles WHERE rolname='sidecarhub'\"" | grep -q 1 ||
    su postgres -c "psql -q -p $PG_PORT -c \"CREATE ROLE sidecarhub LOGIN CREATEDB PASSWORD 'sidecarhub'\""
  su postgres -c "psql -q -p $PG_PORT -tAc \"SELECT 1 FROM pg_database WHERE datname='$PG_DB'\"" | grep -q 1 ||
    su postgres -c "createdb -p $PG_PORT -O sidecarhub $PG_DB"
  export SIDECARHUB_PG_URL="postgres://sidecarhub:sidecarhub@127.0.0.1:$PG_PORT/$PG_DB"
}

ensure_k8s_binaries() {
  # Builds from Go modules on a cold machine (minutes), a no-op when cached. Needs the
  # machine's Go (1.26); Debian's golang-go is far too old to build Kubernetes 1.37.
  command -v go >/dev/null || { say "ERROR: go is not installed; the sandbox is built from Go modules"; return 1; }
  SIDECARHUB_K8S_BIN=$(bash "$SIDECARHUB_ROOT/sandbox/build.sh" | tail -1)
  export SIDECARHUB_K8S_BIN
}

ensure_test_services() {
  # Everything the tests and benchmarks need, and the environment that points the hub at it.
  # $1: the default Redis database number (SIDECARHUB_REDIS_DB overrides it).
  ensure_system_tools
  ensure_browser
  ensure_venv
  ensure_redis
  ensure_postgres
  ensure_k8s_binaries
  export SIDECARHUB_ENV=test
  export DATABASE_URL=$SIDECARHUB_PG_URL
  local redis_db=${SIDECARHUB_REDIS_DB:-$1}
  # A dedicated database: tasks left queued by an earlier, interrupted run must not reach this
  # run's workers (their IDs could match this run's rows).
  redis-cli -p "$REDIS_PORT" -n "$redis_db" flushdb >/dev/null
  export REDIS_URL=redis://127.0.0.1:$REDIS_PORT/$redis_db
  export SECRET_KEY=${SECRET_KEY:-test-only-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}
  export SIDECARHUB_ENCRYPTION_KEY=${SIDECARHUB_ENCRYPTION_KEY:-$("$PY" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')}
}
