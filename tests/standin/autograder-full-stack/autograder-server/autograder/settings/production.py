from .base import *  # noqa: F401,F403

DEBUG = False
EMAIL_USE_TLS = True
