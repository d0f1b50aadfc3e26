"""django.conf.settings: the module DJANGO_SETTINGS_MODULE names."""

import importlib
import os

settings = importlib.import_module(os.environ["DJANGO_SETTINGS_MODULE"])
