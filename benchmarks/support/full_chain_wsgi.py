"""The admission listener's WSGI app as it was served before its lean middleware chain: the
project's whole ``MIDDLEWARE`` (sessions, auth, CSRF, messages, whitenoise...) instead of
``settings.ADMISSION_MIDDLEWARE``. The "before" row of the admission benchmarks, in process
(``admission_handler.py``) and under gunicorn (``apiserver_create.py``:
``benchmarks.support.full_chain_wsgi:application``)."""

from sidecarhub.admission_wsgi import AdmissionWSGIHandler  # sets Django up, as gunicorn loads it

__all__ = ["FullChainHandler", "application"]


class FullChainHandler(AdmissionWSGIHandler):
    """The admission handler (URLconf and all) through the project's whole ``MIDDLEWARE``."""

    middleware_setting = "MIDDLEWARE"


application = FullChainHandler()
