#!/usr/bin/env bash
# Every benchmark in benchmarks/, on a fresh machine: installs and starts PostgreSQL, Redis and
# the Kubernetes sandbox binaries exactly as scripts/test.sh does (scripts/services.sh), on a
# dedicated database (SIDECARHUB_PG_DB, default sidecarhub_bench, migrated here) and Redis
# database (SIDECARHUB_REDIS_DB, default 14). Extra args go to every script (e.g. --repetitions 1);
# BENCH=name runs only benchmarks/name.py. QUICK=1 runs each benchmark's short form (fewer
# repetitions or pods: a smoke run whose figures are rougher; see quick_args). Exits non-zero
# when any benchmark missed its target.
set -euo pipefail
export SIDECARHUB_PG_DB=${SIDECARHUB_PG_DB:-sidecarhub_bench}
source "$(dirname "$0")/services.sh"
START=$(date +%s)

ensure_test_services 14

cd "$SIDECARHUB_ROOT"
"$PY" manage.py migrate --noinput >/dev/null
say "set-up took $(( $(date +%s) - START ))s; running benchmarks"
# The short form of each benchmark (QUICK=1), before the caller's own arguments.
quick_args() {
  case "$(basename "$1" .py)" in
    plan_round | pod_memory | create_publish) echo "--quick" ;;
    import_documents) echo "--documents 250 --repetitions 1" ;;
    admission_handler) echo "--calls 500 --repetitions 1" ;;
    patch_rate | step_pass) echo "--pods 200 --repetitions 1" ;;
  esac
}
failed=()
for script in benchmarks/${BENCH:-*}.py; do
  extra=()
  if [ -n "${QUICK:-}" ]; then read -r -a extra <<<"$(quick_args "$script")"; fi
  say "benchmark: $script ${extra[*]:-} $*"
  "$PY" "$script" "${extra[@]}" "$@" || failed+=("$script")
  # Target 5's second half times the real list call: plan_round again against a sandbox
  # kube-apiserver holding the pods (storing 10,000 takes ≈ 80 s).
  if [ "$(basename "$script" .py)" = plan_round ]; then
    say "benchmark: $script --apiserver ${extra[*]:-} $*"
    "$PY" "$script" --apiserver "${extra[@]}" "$@" || failed+=("$script --apiserver")
  fi
done
say "benchmarks took $(( $(date +%s) - START ))s"
if [ ${#failed[@]} -gt 0 ]; then
  say "missed their target (or failed): ${failed[*]}"
  exit 1
fi
