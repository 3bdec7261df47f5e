"""sidecarhub settings: one module, driven by environment variables, failing fast.

``SIDECARHUB_ENV`` picks the defaults:
- ``dev`` (the quick start): SQLite file, local Redis, a generated secret key and
  encryption key under ``var/``, debug still off unless ``DJANGO_DEBUG=true``.
- ``test``: like production, but the test command supplies every value.
- ``production`` (the default): ``SECRET_KEY``, ``SIDECARHUB_ENCRYPTION_KEY`` and
  ``DATABASE_URL`` must be set.
"""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from sidecarhub.envconfig import env_bool, env_float, env_int, env_list, env_str, parse_database_url
from sidecarhub.sidecarset.validation import PatchMetadataAllowRule, parse_patch_metadata_allowlist

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("SIDECARHUB_VAR_DIR", str(BASE_DIR / "var")))

SIDECARHUB_ENV = env_str("SIDECARHUB_ENV", "production")
if SIDECARHUB_ENV not in {"dev", "test", "production"}:
    raise ImproperlyConfigured(f"SIDECARHUB_ENV must be dev, test or production (got {SIDECARHUB_ENV!r})")
_DEV = SIDECARHUB_ENV == "dev"


def _dev_secret(filename: str, make: str) -> str:
    """Development-only secrets live in var/ so restarts keep sessions and encrypted rows."""
    path = VAR_DIR / filename
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        if make == "fernet":
            from cryptography.fernet import Fernet

            value = Fernet.generate_key().decode()
        else:
            import secrets

            value = secrets.token_urlsafe(50)
        path.write_text(value)
        path.chmod(0o600)
    return path.read_text().strip()


def _patch_metadata_allowlist(name: str, text: str) -> tuple[PatchMetadataAllowRule, ...] | None:
    """The allow-list variable parsed (``None`` when unset); a bad value stops the process."""
    if not text.strip():
        return None
    try:
        return parse_patch_metadata_allowlist(text)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", _dev_secret("secret_key", "token") if _DEV else None)
# Comma-separated Fernet keys, newest first: MultiFernet decrypts with any, encrypts with the first.
SIDECARHUB_ENCRYPTION_KEYS = env_list("SIDECARHUB_ENCRYPTION_KEY", [])
if not SIDECARHUB_ENCRYPTION_KEYS:
    if not _DEV:
        raise ImproperlyConfigured("SIDECARHUB_ENCRYPTION_KEY must be set (one or more Fernet keys)")
    SIDECARHUB_ENCRYPTION_KEYS = [_dev_secret("encryption_key", "fernet")]

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "sidecarhub.apps.ConsoleAdminConfig",  # django.contrib.admin with the home dashboard
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    # Swagger UI and ReDoc served by the hub itself: /api/v1/docs/ works without internet.
    "drf_spectacular_sidecar",
    "sidecarhub",
    "clusters",
    "rollouts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "sidecarhub.middleware.RequestIdMiddleware",
    # Serves the admin's static files without a separate web server (quick start, containers).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "sidecarhub.urls"
WSGI_APPLICATION = "sidecarhub.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": parse_database_url(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'sidecarhub.sqlite3'}" if _DEV else None)
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# 24-hour UTC times everywhere in the console (issue 16 item 10): the project's own format
# module wins over the en-us locale's 12-hour "p.m." formats.
FORMAT_MODULE_PATH = ["sidecarhub.formats"]

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0" if _DEV else None)

# --- Celery -------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
# Results are not used for control flow (tasks write rows); keeping them lets `healthz` and
# tests check a round trip without a second store.
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_RESULT_EXPIRES = 3600
# Redelivery after a worker dies must happen well after the longest task's hard limit.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
# A task is acknowledged after it ran, so a killed worker's step is redelivered.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One message at a time per process: steps are short and must not wait behind a long prefetch.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Soft and hard limits well below the visibility timeout (STYLE P8).
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 120, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 180, minimum=2)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {}
# Cluster health (/version per cluster) and status write-back (one pod list per cluster).
CELERY_BEAT_SCHEDULE["clusters-health"] = {
    "task": "clusters.check_all_clusters",
    "schedule": env_int("SIDECARHUB_CLUSTER_HEALTH_SECONDS", 60, minimum=5),
}
# SIDECARHUB_CLUSTER_RECONCILE_SECONDS: the status refresh variable's former name, still read.
CELERY_BEAT_SCHEDULE["clusters-status"] = {
    "task": "clusters.refresh_all_cluster_statuses",
    "schedule": env_int(
        "SIDECARHUB_CLUSTER_STATUS_SECONDS",
        env_int("SIDECARHUB_CLUSTER_RECONCILE_SECONDS", 30, minimum=5),
        minimum=5,
    ),
}
# Rollouts: the per-cluster reconciler is woken by events; beat is the safety net (lost wakes,
# approval expiry, progress deadlines).
CELERY_BEAT_SCHEDULE["rollouts-reconcile"] = {
    "task": "rollouts.reconcile_all",
    "schedule": env_int("SIDECARHUB_ROLLOUT_RECONCILE_SECONDS", 10, minimum=1),
}

# --- Single-flight locks (sidecarhub.locks) -------------------------------------------------------
# On databases without advisory locks (SQLite), a lock is a lease in Redis that its holder renews
# every third of this time; a holder that dies blocks its key (e.g. one cluster's reconciler) for
# at most this long. PostgreSQL's advisory locks do not use it.
SIDECARHUB_LOCK_LEASE_SECONDS = env_float("SIDECARHUB_LOCK_LEASE_SECONDS", 30.0, minimum=0.5)

# --- Rollouts (rollouts.reconciler, rollouts.services) --------------------------------------------
# One reconcile pass per cluster: its time budget, the most pods it patches from one plan, and
# how long it sleeps between looks while only observing; then it re-enqueues itself.
SIDECARHUB_ROLLOUT_PASS_SECONDS = env_float("SIDECARHUB_ROLLOUT_PASS_SECONDS", 5.0, minimum=0.1)
SIDECARHUB_ROLLOUT_PATCHES_PER_PASS = env_int("SIDECARHUB_ROLLOUT_PATCHES_PER_PASS", 1000, minimum=1)
SIDECARHUB_ROLLOUT_OBSERVE_INTERVAL_SECONDS = env_float(
    "SIDECARHUB_ROLLOUT_OBSERVE_INTERVAL_SECONDS", 0.3, minimum=0.01
)
SIDECARHUB_ROLLOUT_REQUEUE_SECONDS = env_float("SIDECARHUB_ROLLOUT_REQUEUE_SECONDS", 0.2, minimum=0)
# A running step whose worker sent no heartbeat for this long is noted as lost (its pods are
# then checked by reading them, never patched twice).
SIDECARHUB_ROLLOUT_HEARTBEAT_TIMEOUT_SECONDS = env_int(
    "SIDECARHUB_ROLLOUT_HEARTBEAT_TIMEOUT_SECONDS", 120, minimum=5
)
# Defaults of a new rollout (each rollout keeps its own values): failed pods tolerated per step
# before it pauses, no-progress deadline, per-pod timeout, approval lifetime.
SIDECARHUB_ROLLOUT_FAILURE_THRESHOLD = env_int("SIDECARHUB_ROLLOUT_FAILURE_THRESHOLD", 0, minimum=0)
SIDECARHUB_ROLLOUT_PROGRESS_DEADLINE_SECONDS = env_int(
    "SIDECARHUB_ROLLOUT_PROGRESS_DEADLINE_SECONDS", 600, minimum=10
)
SIDECARHUB_ROLLOUT_POD_TIMEOUT_SECONDS = env_int("SIDECARHUB_ROLLOUT_POD_TIMEOUT_SECONDS", 300, minimum=5)
SIDECARHUB_ROLLOUT_APPROVAL_TTL_SECONDS = env_int(
    "SIDECARHUB_ROLLOUT_APPROVAL_TTL_SECONDS", 86400, minimum=60
)
# How often the console's live regions (home dashboard, rollout page, fleet) ask the server for
# their new rendering (sidecarhub.live).
SIDECARHUB_CONSOLE_REFRESH_SECONDS = env_int("SIDECARHUB_CONSOLE_REFRESH_SECONDS", 5, minimum=1)
# Defaults of a new workload restart (decision 18; each restart keeps its own values): workloads
# restarting at the same time, and seconds one has to complete its own rollout before the
# restart pauses.
SIDECARHUB_RESTART_WORKLOADS_AT_ONCE = env_int("SIDECARHUB_RESTART_WORKLOADS_AT_ONCE", 1, minimum=1)
SIDECARHUB_RESTART_WORKLOAD_DEADLINE_SECONDS = env_int(
    "SIDECARHUB_RESTART_WORKLOAD_DEADLINE_SECONDS", 600, minimum=1
)

# --- Admission webhook (clusters.admission, clusters.webhooks) ------------------------------------
# TLS of the admission endpoint: the web server that serves it (gunicorn --certfile/--keyfile)
# uses the certificate and key; the CA file is the caBundle registered in every cluster (empty:
# the apiserver trusts its system roots). The quick start generates a CA + a cert for 127.0.0.1.
SIDECARHUB_WEBHOOK_CERT_FILE = env_str("SIDECARHUB_WEBHOOK_CERT_FILE", "")
SIDECARHUB_WEBHOOK_KEY_FILE = env_str("SIDECARHUB_WEBHOOK_KEY_FILE", "")
SIDECARHUB_WEBHOOK_CA_FILE = env_str("SIDECARHUB_WEBHOOK_CA_FILE", "")
# Base URL at which clusters reach the hub when a cluster has no webhook_url of its own.
SIDECARHUB_WEBHOOK_URL = env_str("SIDECARHUB_WEBHOOK_URL", "")
# Apply the admission webhook to a cluster when it is registered and whenever its webhook or
# connection settings change. Off: webhooks are managed elsewhere (GitOps) or by hand with
# `sidecarhub cluster register-webhook`.
SIDECARHUB_WEBHOOK_AUTO_REGISTER = env_bool("SIDECARHUB_WEBHOOK_AUTO_REGISTER", True)
# How often each web process re-reads the definitions generation (decision 10: a publish takes
# effect within 2 s, so this must stay well below that).
SIDECARHUB_ADMISSION_GENERATION_CHECK_SECONDS = float(
    env_str("SIDECARHUB_ADMISSION_GENERATION_CHECK_SECONDS", "1.0")
)
# Namespace labels are cached per process this long; a cache miss is one GET with this timeout.
SIDECARHUB_ADMISSION_NAMESPACE_TTL_SECONDS = float(
    env_str("SIDECARHUB_ADMISSION_NAMESPACE_TTL_SECONDS", "30")
)
SIDECARHUB_ADMISSION_NAMESPACE_TIMEOUT_SECONDS = float(
    env_str("SIDECARHUB_ADMISSION_NAMESPACE_TIMEOUT_SECONDS", "1.0")
)
# After a failed read, that namespace is not read again for this long (its last labels, or none,
# are used): an unreadable cluster must not cost every pod creation the read timeout.
SIDECARHUB_ADMISSION_NAMESPACE_RETRY_SECONDS = float(
    env_str("SIDECARHUB_ADMISSION_NAMESPACE_RETRY_SECONDS", "5")
)
# Largest AdmissionReview accepted (413 above); the apiserver's own request limit is 3 MiB.
SIDECARHUB_ADMISSION_MAX_BODY_BYTES = env_int(
    "SIDECARHUB_ADMISSION_MAX_BODY_BYTES", 3 * 1024 * 1024, minimum=64 * 1024
)

# --- SidecarSet validation (sidecarhub.services) ---------------------------------------------------
# Kruise's patchPodMetadata allow-list (injection.md §5.7), in the JSON of Kruise's ConfigMap key
# SidecarSet_PatchPodMetadata_WhiteList: {"rules": [{"selector": <label selector, optional>,
# "allowedAnnotationKeyExprs": ["<regex>", ...]}]}. A rule applies to SidecarSets whose labels
# its selector matches (no selector: all); every key a SidecarSet's patchPodMetadata sets must
# then match one of the applicable rules' expressions (unanchored search, as in Kruise). Unset:
# no allow-list. Checked when a SidecarSet is created, updated or imported.
SIDECARHUB_PATCH_POD_METADATA_ALLOWLIST = _patch_metadata_allowlist(
    "SIDECARHUB_PATCH_POD_METADATA_ALLOWLIST", env_str("SIDECARHUB_PATCH_POD_METADATA_ALLOWLIST", "")
)
# Kruise's feature gate SidecarSetPatchPodMetadataDefaultsAllowed: when no rule applies to a
# SidecarSet (or there is no allow-list), true allows every key, false allows none. Default
# true, so a hub without an allow-list accepts every patchPodMetadata (docs/compatibility.md);
# Kruise's own default is false.
SIDECARHUB_PATCH_POD_METADATA_DEFAULTS_ALLOWED = env_bool(
    "SIDECARHUB_PATCH_POD_METADATA_DEFAULTS_ALLOWED", True
)

# --- REST framework -----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Deny by default: every viewset opts in to what it allows (STYLE P4).
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Number filters bounded to 64 bits; ?limit= bounded by ApiPagination.max_limit.
    "DEFAULT_FILTER_BACKENDS": ["sidecarhub.api.filtersets.ApiFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "sidecarhub.api.pagination.ApiPagination",
    "PAGE_SIZE": 50,
    # JSON bodies are read with a size cap and refused (400) when nested too deeply; form fields
    # are capped by DATA_UPLOAD_MAX_MEMORY_SIZE (413). Views that take Kruise YAML or larger
    # imports declare their own parsers.
    "DEFAULT_PARSER_CLASSES": [
        "sidecarhub.api.parsers.DocumentJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # One error body, {"errors": [{"path", "message"}]}, for every view of the API.
    "EXCEPTION_HANDLER": "sidecarhub.api.errors.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "sidecarhub API",
    "DESCRIPTION": "SidecarSets, clusters and approved rollouts across many Kubernetes clusters.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # /api/v1/docs/ and /api/v1/redoc/ load their assets from the hub (drf_spectacular_sidecar),
    # never from a CDN: the docs render without internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Two choice sets share the field name "outcome": a pod update's and a completed rollout's.
    "ENUM_NAME_OVERRIDES": {
        "PodUpdateOutcomeEnum": "rollouts.choices.PodUpdateOutcome",
        "RolloutOutcomeEnum": "rollouts.choices.RolloutOutcome",
    },
}

# --- Security -----------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# --- Logging ------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
