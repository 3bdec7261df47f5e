# The two README commands. Everything they need is installed and started by scripts/.
.PHONY: run test lint sandbox

run:        ## web console + API + worker + beat + the sandbox cluster, on SQLite and local Redis
	@bash scripts/run.sh

test:       ## the whole test suite, against PostgreSQL, Redis and a real kube-apiserver
	@bash scripts/test.sh

lint:
	@.venv/bin/ruff check . && .venv/bin/ruff format --check . && SIDECARHUB_ENV=dev .venv/bin/mypy

sandbox:    ## only the sandbox cluster, in the foreground
	@bash -c 'source scripts/services.sh && ensure_venv && ensure_k8s_binaries && read -ra args <<< "$${SIDECARHUB_SANDBOX_ARGS:-}" && exec .venv/bin/python -m sandbox.cli up "$${args[@]}"'
