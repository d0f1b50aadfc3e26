"""STAND-IN (abridged) of autograder/settings/base.py: the environment keys and secrets the
server reads, with upstream's defaults, and its refusal to start without the secrets."""

import os
import sys

BASE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SETTINGS_DIR = os.path.join(BASE_DIR, "autograder", "settings")
SECRETS_DIR = os.path.join(SETTINGS_DIR, "secrets")
SECRET_KEY_FILENAME = os.path.join(SECRETS_DIR, "secret_key")
GPG_KEY_ID_FILENAME = os.path.join(SECRETS_DIR, "gpg_key_id_file")
GPG_KEY_PASSWORD_FILENAME = os.path.join(SECRETS_DIR, "gpg_key_password")

if sys.argv[0] != "generate_secrets.py":
    for _path in (SECRET_KEY_FILENAME, GPG_KEY_ID_FILENAME, GPG_KEY_PASSWORD_FILENAME):
        if not os.path.exists(_path):
            raise RuntimeError(f"{_path} is missing: run generate_secrets.py first")
    with open(SECRET_KEY_FILENAME) as f:
        SECRET_KEY = f.read()
    with open(GPG_KEY_ID_FILENAME) as f:
        GPG_KEY_ID = f.read()
    with open(GPG_KEY_PASSWORD_FILENAME) as f:
        GPG_KEY_PASSWORD = f.read()

DEBUG = False
ALLOWED_HOSTS = os.environ.get("ALLOWED_HOSTS", "").split()
SITE_DOMAIN = os.environ.get("SITE_DOMAIN", "localhost:8080")
MEDIA_ROOT = os.environ.get("MEDIA_ROOT", os.path.join(BASE_DIR, "media_root"))
USE_NGINX_X_ACCEL = os.environ.get("USE_NGINX_X_ACCEL", "false").lower() == "true"

OAUTH2_SECRETS_FILENAME = os.environ.get("OAUTH2_SECRETS_FILENAME", "dev_oauth2_secrets.json")
OAUTH2_SECRETS_PATH = os.path.join(SETTINGS_DIR, OAUTH2_SECRETS_FILENAME)
OAUTH2_PROVIDER = os.environ.get("OAUTH2_PROVIDER", "google")

EMAIL_FROM_ADDR = os.environ.get("EMAIL_FROM_ADDR", "admin@autograder.io")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
ERROR_NOTIFICATION_EMAIL_ADDRS = os.environ.get("ERROR_NOTIFICATION_EMAIL_ADDRS", "").split()

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("AG_DB_NAME", "postgres"),
        "USER": os.environ.get("AG_DB_USER", "postgres"),
        "PASSWORD": os.environ.get("AG_DB_PASSWORD", "postgres"),
        "HOST": os.environ.get("AG_DB_HOST", "localhost"),
        "PORT": os.environ.get("AG_DB_PORT", "5432"),
    }
}

AG_REDIS_HOST = os.environ.get("AG_REDIS_HOST", "localhost")
AG_REDIS_PORT = os.environ.get("AG_REDIS_PORT", "6379")
CELERY_BROKER_URL = os.environ.get("AG_CELERY_BROKER_URL", "amqp://guest@localhost:5672//")
CELERY_RESULT_BACKEND = os.environ.get("AG_CELERY_RESULTS_BACKEND_URL", "redis://localhost:6379/0")

IMAGE_BUILD_MEMORY_LIMIT = os.environ.get("IMAGE_BUILD_MEMORY_LIMIT", "4g")
IMAGE_BUILD_NPROC_LIMIT = int(os.environ.get("IMAGE_BUILD_NPROC_LIMIT", "1000"))
IMAGE_BUILD_TIMEOUT = int(os.environ.get("IMAGE_BUILD_TIMEOUT", "600"))
SANDBOX_MEM_LIMIT = os.environ.get("SANDBOX_MEM_LIMIT", "4g")
SANDBOX_PIDS_LIMIT = int(os.environ.get("SANDBOX_PIDS_LIMIT", "512"))
SANDBOX_IMAGE_REGISTRY_HOST = os.environ.get("SANDBOX_IMAGE_REGISTRY_HOST", "localhost")
SANDBOX_IMAGE_REGISTRY_PORT = os.environ.get("SANDBOX_IMAGE_REGISTRY_PORT", "5001")
