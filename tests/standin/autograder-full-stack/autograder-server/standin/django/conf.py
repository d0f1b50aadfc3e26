"""django.conf.settings: the module DJANGO_SETTINGS_MODULE names, imported on first use as
Django's LazySettings does (generate_secrets.py imports Django without settings)."""

import importlib
import os


class _LazySettings:
    def __getattr__(self, name):
        return getattr(importlib.import_module(os.environ["DJANGO_SETTINGS_MODULE"]), name)


settings = _LazySettings()
