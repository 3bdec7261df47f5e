#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs and starts PostgreSQL, Redis and the
# Kubernetes sandbox binaries, then runs pytest against PostgreSQL. Extra args go to pytest.
set -euo pipefail
source "$(dirname "$0")/services.sh"
START=$(date +%s)

ensure_test_services 5

cd "$SIDECARHUB_ROOT"
if [ "${SIDECARHUB_SKIP_LINT:-0}" != 1 ]; then  # CI always lints; skipping is for partial local runs
  say "lint: ruff"
  "$VENV/bin/ruff" check .
  "$VENV/bin/ruff" format --check . >/dev/null || { "$VENV/bin/ruff" format --check .; exit 1; }
  say "types: mypy (files and strictness in pyproject.toml)"
  "$VENV/bin/mypy"
fi
say "set-up took $(( $(date +%s) - START ))s; running pytest"
set +e
"$VENV/bin/pytest" "$@"
rc=$?
set -e
say "test command took $(( $(date +%s) - START ))s (pytest exit $rc)"
exit $rc
