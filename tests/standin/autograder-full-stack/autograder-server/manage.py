#!/usr/bin/env python3
"""Django's command-line utility for administrative tasks (stand-in: see standin/)."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "standin")]


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autograder.settings.development")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
