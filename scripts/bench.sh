#!/usr/bin/env bash
# Every benchmark in benchmarks/, on a fresh machine: installs and starts PostgreSQL, Redis and
# the Kubernetes sandbox binaries exactly as scripts/test.sh does (scripts/services.sh), on a
# dedicated database (SIDECARHUB_PG_DB, default sidecarhub_bench, migrated here) and Redis
# database (SIDECARHUB_REDIS_DB, default 14). Extra args go to every script (e.g. --repetitions 1);
# BENCH=name runs only benchmarks/name.py. Exits non-zero when any benchmark missed its target.
set -euo pipefail
export SIDECARHUB_PG_DB=${SIDECARHUB_PG_DB:-sidecarhub_bench}
source "$(dirname "$0")/services.sh"
START=$(date +%s)

ensure_system_tools
ensure_venv
ensure_redis
ensure_postgres
ensure_k8s_binaries

export SIDECARHUB_ENV=test
export DATABASE_URL=$SIDECARHUB_PG_URL
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT/${SIDECARHUB_REDIS_DB:-14}
export SECRET_KEY=${SECRET_KEY:-bench-only-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}
export SIDECARHUB_ENCRYPTION_KEY=${SIDECARHUB_ENCRYPTION_KEY:-$("$PY" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')}

cd "$SIDECARHUB_ROOT"
"$PY" manage.py migrate --noinput >/dev/null
say "set-up took $(( $(date +%s) - START ))s; running benchmarks"
failed=()
for script in benchmarks/${BENCH:-*}.py; do
  say "benchmark: $script"
  "$PY" "$script" "$@" || failed+=("$script")
done
say "benchmarks took $(( $(date +%s) - START ))s"
if [ ${#failed[@]} -gt 0 ]; then
  say "missed their target (or failed): ${failed[*]}"
  exit 1
fi
