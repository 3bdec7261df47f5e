# The hub's image: web (gunicorn, API + console), admission (gunicorn over TLS, the webhook only:
# sidecarhub.admission_wsgi), worker and beat all run from it (see docker-compose.yml).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    SIDECARHUB_VAR_DIR=/var/lib/sidecarhub
WORKDIR /app
COPY pyproject.toml requirements.lock ./
COPY sidecarhub ./sidecarhub
COPY clusters ./clusters
COPY rollouts ./rollouts
COPY sandbox ./sandbox
COPY templates ./templates
COPY manage.py ./
RUN pip install -c requirements.lock . \
 && useradd --system --home /app sidecarhub \
 && mkdir -p /var/lib/sidecarhub && chown sidecarhub /var/lib/sidecarhub
# collectstatic needs settings to import; these throw-away values never reach a running container.
RUN SIDECARHUB_ENV=dev SIDECARHUB_VAR_DIR=/tmp/build-var python manage.py collectstatic --noinput \
 && mv /tmp/build-var/static /var/lib/sidecarhub/static && rm -rf /tmp/build-var \
 && chown -R sidecarhub /var/lib/sidecarhub
USER sidecarhub
EXPOSE 8000 8443
# The web console and API. The admission listener (TLS, called by the clusters' apiservers) runs
# from the same image with its own server (granian; sidecarhub/admission_server.py), as
# docker-compose.yml's `admission` service does:
#   python -m sidecarhub.admission_server --bind 0.0.0.0:8443
CMD ["gunicorn", "sidecarhub.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
