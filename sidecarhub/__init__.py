"""sidecarhub: OpenKruise-style SidecarSets across many Kubernetes clusters.

The Celery app is imported lazily by ``sidecarhub.celery`` users (workers, services that
enqueue); importing this package alone stays free of Django and Celery so the pure core
(``sidecarhub.sidecarset``) can be used anywhere.
"""
