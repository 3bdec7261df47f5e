#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs and starts PostgreSQL, Redis and the
# Kubernetes sandbox binaries, then runs pytest against PostgreSQL. Extra args go to pytest.
set -euo pipefail
source "$(dirname "$0")/services.sh"
START=$(date +%s)

ensure_system_tools
ensure_venv
ensure_redis
ensure_postgres
ensure_k8s_binaries

export SIDECARHUB_ENV=test
export DATABASE_URL=$SIDECARHUB_PG_URL
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT/${SIDECARHUB_REDIS_DB:-5}
export SECRET_KEY=${SECRET_KEY:-test-only-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}
export SIDECARHUB_ENCRYPTION_KEY=${SIDECARHUB_ENCRYPTION_KEY:-$("$PY" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')}

cd "$SIDECARHUB_ROOT"
if [ "${SIDECARHUB_SKIP_LINT:-0}" != 1 ]; then  # CI always lints; skipping is for partial local runs
  say "lint: ruff"
  "$VENV/bin/ruff" check .
  "$VENV/bin/ruff" format --check . >/dev/null || { "$VENV/bin/ruff" format --check .; exit 1; }
fi
say "set-up took $(( $(date +%s) - START ))s; running pytest"
set +e
"$VENV/bin/pytest" "$@"
rc=$?
set -e
say "test command took $(( $(date +%s) - START ))s (pytest exit $rc)"
exit $rc
