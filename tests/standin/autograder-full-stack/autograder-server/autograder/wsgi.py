"""WSGI entry point. Stand-in application: a few read-only JSON endpoints that show what a
deployment configured (settings, constants baked into the image, the bootstrap's data)."""

import json
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autograder.settings.production")

from django.conf import settings  # noqa: E402  (fails like upstream without the secrets)


def _body(path):
    if path == "/api/standin/":
        from autograder.core import constants

        # what a deployment configured; never a secret's value
        return {
            "site_domain": settings.SITE_DOMAIN,
            "allowed_hosts": settings.ALLOWED_HOSTS,
            "use_nginx_x_accel": settings.USE_NGINX_X_ACCEL,
            "gunicorn_workers": int(os.environ.get("GUNICORN_STANDIN_WORKERS", "1")),
            "max_subprocess_timeout": constants.MAX_SUBPROCESS_TIMEOUT,
            "oauth2_provider": settings.OAUTH2_PROVIDER,
            "oauth2_secrets_present": os.path.exists(settings.OAUTH2_SECRETS_PATH),
            "email_from_addr": settings.EMAIL_FROM_ADDR,
            "email_host": settings.EMAIL_HOST,
            "email_port": settings.EMAIL_PORT,
            "db_host": settings.DATABASES["default"]["HOST"],
            "secrets_dir": settings.SECRETS_DIR,
        }
    if path == "/api/courses/":
        from autograder.core.models import Course

        return [{"pk": c.pk, "name": c.name, "admins": [u.username for u in c.admins.all()]}
                for c in Course.objects.all()]
    return None


def application(environ, start_response):
    host = environ.get("HTTP_HOST", "").rsplit(":", 1)[0]
    if host not in settings.ALLOWED_HOSTS and "*" not in settings.ALLOWED_HOSTS:
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [f"Invalid HTTP_HOST header: {host!r}.".encode()]
    body = _body(environ.get("PATH_INFO", "/"))
    if body is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"Not Found"]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]
