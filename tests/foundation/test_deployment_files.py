"""docker-compose.yml is complete and points at code that exists (no Docker engine runs here)."""

from __future__ import annotations

import importlib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_has_every_service_and_hub_services_share_one_configuration() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web", "admission", "worker", "beat"} <= set(services)
    hub = [services[name] for name in ("web", "admission", "worker", "beat", "migrate")]
    for service in hub:
        env = service["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert {"SECRET_KEY", "SIDECARHUB_ENCRYPTION_KEY"} <= set(env)
        assert env["SIDECARHUB_ENV"] == "production"
    for name in ("postgres", "redis"):
        assert "healthcheck" in services[name]


def test_compose_commands_name_real_modules() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert services["web"]["command"][1] == "sidecarhub.wsgi:application"
    importlib.import_module("sidecarhub.wsgi")
    # The webhook has its own listener, over TLS, serving the webhook and /healthz only.
    admission = services["admission"]["command"]
    assert admission[:3] == ["python", "-m", "sidecarhub.admission_server"]
    server = importlib.import_module("sidecarhub.admission_server")
    assert server.APP_FACTORY.startswith("sidecarhub.admission_wsgi:")
    assert callable(
        getattr(importlib.import_module("sidecarhub.admission_wsgi"), server.APP_FACTORY.split(":")[1])
    )
    tls = services["admission"]["environment"]
    assert tls["SIDECARHUB_WEBHOOK_CERT_FILE"] and tls["SIDECARHUB_WEBHOOK_KEY_FILE"]
    for name in ("worker", "beat"):
        command = services[name]["command"]
        assert command[:3] == ["celery", "-A", "sidecarhub.celery"]
    assert importlib.import_module("sidecarhub.celery").app.main == "sidecarhub"
