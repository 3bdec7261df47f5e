#!/usr/bin/env bash
# Run the whole service on a fresh machine: web console + API (gunicorn), a Celery worker,
# Celery beat, and the sandbox Kubernetes cluster; SQLite and a local Redis by default.
# Ctrl-C stops everything. Prints the URL, where the admin login is and the sandbox kubeconfig;
# writes var/sidecarhub.env (mode 600: the services' environment and the admin's API token), which
# the `sidecarhub` CLI reads in any other terminal.
set -euo pipefail
source "$(dirname "$0")/services.sh"

ensure_system_tools
ensure_venv
ensure_redis
ensure_k8s_binaries

cd "$SIDECARHUB_ROOT"
export SIDECARHUB_ENV=${SIDECARHUB_ENV:-dev}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}
PORT=${SIDECARHUB_PORT:-8000}
# SIDECARHUB_VAR_DIR moves all state (database, keys, logs, sandbox, env file): a second hub.
export SIDECARHUB_VAR_DIR=${SIDECARHUB_VAR_DIR:-$SIDECARHUB_ROOT/var}
VAR=$SIDECARHUB_VAR_DIR
export DATABASE_URL=${DATABASE_URL:-sqlite:///$VAR/sidecarhub.sqlite3}
ENV_FILE=$VAR/sidecarhub.env
mkdir -p "$VAR/logs"

# Admission webhook over TLS (clusters.admission): a provided certificate, or a self-signed CA +
# serving certificate for 127.0.0.1 (30 days; regenerated after 20).
WEBHOOK_PORT=${SIDECARHUB_WEBHOOK_PORT:-8443}
if [ -z "${SIDECARHUB_WEBHOOK_CERT_FILE:-}" ]; then
  TLS_DIR=$VAR/webhook-tls
  if [ ! -f "$TLS_DIR/webhook.crt" ] || [ -n "$(find "$TLS_DIR/webhook.crt" -mtime +20 2>/dev/null)" ]; then
    "$PY" -c "import sys; from pathlib import Path; from sandbox.pki import make_serving_certificate; \
make_serving_certificate(Path(sys.argv[1]), hosts=('127.0.0.1', 'localhost'), prefix='webhook')" "$TLS_DIR"
  fi
  export SIDECARHUB_WEBHOOK_CERT_FILE=$TLS_DIR/webhook.crt SIDECARHUB_WEBHOOK_KEY_FILE=$TLS_DIR/webhook.key
  export SIDECARHUB_WEBHOOK_CA_FILE=$TLS_DIR/webhook-ca.crt
fi
export SIDECARHUB_WEBHOOK_URL=${SIDECARHUB_WEBHOOK_URL:-https://127.0.0.1:$WEBHOOK_PORT}

"$PY" manage.py migrate --noinput >/dev/null
"$PY" manage.py collectstatic --noinput >/dev/null
ADMIN_FILE=$VAR/admin-login
if [ ! -f "$ADMIN_FILE" ]; then
  ADMIN_PASSWORD=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(18))')
  (umask 077; echo "admin $ADMIN_PASSWORD" > "$ADMIN_FILE")
fi
read -r ADMIN_USER ADMIN_PASSWORD < "$ADMIN_FILE"
DJANGO_SUPERUSER_PASSWORD=$ADMIN_PASSWORD "$PY" manage.py shell -c "
import os
from django.contrib.auth import get_user_model
User = get_user_model()
user, _ = User.objects.get_or_create(username='$ADMIN_USER', defaults={'is_staff': True, 'is_superuser': True})
user.set_password(os.environ['DJANGO_SUPERUSER_PASSWORD']); user.is_staff = user.is_superuser = True; user.save()
" >/dev/null
# The env file a second terminal's CLI reads; from here on this script uses the CLI the same way.
"$PY" manage.py shell -c "
from pathlib import Path
from sidecarhub.envfile import write_run_env_file
write_run_env_file(Path('$ENV_FILE'), url='http://127.0.0.1:$PORT', admin_username='$ADMIN_USER')
" >/dev/null
export SIDECARHUB_ENV_FILE=$ENV_FILE
CLI=$VENV/bin/sidecarhub

PIDS=()
STOPPING=0
cleanup() {
  trap - EXIT INT TERM
  STOPPING=1
  say "stopping"
  for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

start() {  # start NAME CMD...: own process group, log under var/logs
  local name=$1; shift
  setsid "$@" >"$VAR/logs/$name.log" 2>&1 &
  PIDS+=($!)
}

rm -f "$VAR/sandbox.ready"
# The sandbox's apiserver presents a fresh webhook token to the hub's webhook (its admission
# configuration); the hub is given the same token below, so injection takes the authenticated path.
# Extra options of the sandbox (`python -m sandbox.cli up --help`), e.g. the pod simulator's failure
# knobs: SIDECARHUB_SANDBOX_ARGS='--pull-failure *:broken --ready-delay log-agent:*=15'. Split on
# spaces, never glob-expanded.
read -ra SANDBOX_ARGS <<< "${SIDECARHUB_SANDBOX_ARGS:-}"
start sandbox "$PY" -m sandbox.cli up --name sandbox --dir "$VAR/sandbox" --ready-file "$VAR/sandbox.ready" \
  --webhook-auth --webhook-url "$SIDECARHUB_WEBHOOK_URL" "${SANDBOX_ARGS[@]}"
for _ in $(seq 240); do [ -f "$VAR/sandbox.ready" ] && break; sleep 0.5; done
[ -f "$VAR/sandbox.ready" ] || { say "ERROR: the sandbox did not start; see $VAR/logs/sandbox.log"; exit 1; }
KUBECONFIG_PATH=$VAR/sandbox/kubeconfig.yaml
"$CLI" cluster add --name sandbox --kubeconfig "$KUBECONFIG_PATH" --context sandbox --replace \
  >"$VAR/logs/register-sandbox.log" 2>&1 || say "warning: registering the sandbox failed; see $VAR/logs/register-sandbox.log"
"$CLI" cluster webhook-auth sandbox --require --token-file "$VAR/sandbox/admission/webhook-token" \
  >>"$VAR/logs/register-sandbox.log" 2>&1 || say "warning: setting the sandbox's webhook token failed; see $VAR/logs/register-sandbox.log"

start worker "$PY" -m celery -A sidecarhub.celery worker --loglevel=INFO --concurrency=2
start beat "$PY" -m celery -A sidecarhub.celery beat --loglevel=INFO --schedule "$VAR/celerybeat-schedule"
start web "$VENV/bin/gunicorn" sidecarhub.wsgi:application --bind "127.0.0.1:$PORT" --workers 2 --access-logfile -
# The admission listener, over TLS, for the clusters' apiservers: only the webhook and /healthz
# (sidecarhub.admission_wsgi); the plain port above has no admission route.
# Its server model: granian, keep-alive, TLS loaded once per worker, workers warmed before
# serving (sidecarhub/admission_server.py; the certificate and key come from
# SIDECARHUB_WEBHOOK_CERT_FILE / SIDECARHUB_WEBHOOK_KEY_FILE).
start web-tls "$PY" -m sidecarhub.admission_server --bind "127.0.0.1:$WEBHOOK_PORT"

for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.3; done
for _ in $(seq 100); do
  curl -fsS --cacert "${SIDECARHUB_WEBHOOK_CA_FILE:-/dev/null}" "https://127.0.0.1:$WEBHOOK_PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.3
done
"$CLI" cluster register-webhook sandbox --url "$SIDECARHUB_WEBHOOK_URL" \
  >"$VAR/logs/register-webhook.log" 2>&1 || say "warning: registering the sandbox webhook failed; see $VAR/logs/register-webhook.log"
cat <<MSG

  sidecarhub is running
    web console   http://127.0.0.1:$PORT/admin/   (user $ADMIN_USER, password in $ADMIN_FILE)
    API           http://127.0.0.1:$PORT/api/v1/   (schema: /api/v1/schema/, docs: /api/v1/docs/)
    health        http://127.0.0.1:$PORT/healthz
    admission     $SIDECARHUB_WEBHOOK_URL/admission/v1/clusters/<cluster>/pods   (TLS only, CA $SIDECARHUB_WEBHOOK_CA_FILE;
                  the sandbox's apiserver presents its webhook token: var/sandbox/admission/)
    sandbox       kubeconfig $KUBECONFIG_PATH${SIDECARHUB_SANDBOX_ARGS:+   (options: $SIDECARHUB_SANDBOX_ARGS)}
                  $SIDECARHUB_K8S_BIN/kubectl --kubeconfig $KUBECONFIG_PATH get pods -A
    CLI           .venv/bin/sidecarhub sidecarset list   (any terminal: it reads $ENV_FILE)
    logs          $VAR/logs/
  Ctrl-C stops everything.

MSG
wait -n "${PIDS[@]}" || true
[ "$STOPPING" = 1 ] || { say "a process exited; see $VAR/logs/"; exit 1; }
