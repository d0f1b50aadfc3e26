"""manage.py commands a deployment runs: migrate, showmigrations, shell, check."""

import argparse
import code
import importlib
import os
import sys

from django.conf import settings
from django.db import execute

APPS = ("core",)  # apps with migrations, in autograder/<app>/migrations/NNNN_name.py
RECORDER = ("CREATE TABLE IF NOT EXISTS django_migrations (id INTEGER PRIMARY KEY"
            " AUTOINCREMENT, app VARCHAR(255) NOT NULL, name VARCHAR(255) NOT NULL,"
            " applied DATETIME NOT NULL)")


def _migrations():
    """[(app, name, operations)] in order."""
    found = []
    for app in APPS:
        folder = os.path.join(settings.BASE_DIR, "autograder", app, "migrations")
        for filename in sorted(os.listdir(folder)):
            if filename[:4].isdigit() and filename.endswith(".py"):
                name = filename[:-3]
                module = importlib.import_module(f"autograder.{app}.migrations.{name}")
                found.append((app, name, module.operations))
    return found


def _applied():
    rows = execute((RECORDER, []), ("SELECT app, name FROM django_migrations", []))
    return {(app, name) for app, name in rows}


def migrate(args):
    parser = argparse.ArgumentParser(prog="manage.py migrate")
    parser.add_argument("--noinput", "--no-input", action="store_true")
    parser.parse_args(args)
    applied = _applied()
    print("Operations to perform:")
    print(f"  Apply all migrations: {', '.join(APPS)}")
    print("Running migrations:")
    pending = [m for m in _migrations() if m[:2] not in applied]
    if not pending:
        print("  No migrations to apply.")
    for app, name, operations in pending:
        print(f"  Applying {app}.{name}...", end="", flush=True)
        execute(*[(sql, []) for sql in operations],
                ("INSERT INTO django_migrations (app, name, applied)"
                 " VALUES (?, ?, datetime('now'))", [app, name]))
        print(" OK")


def showmigrations(args):
    applied = _applied()
    for app in APPS:
        print(app)
        for m_app, name, _ops in _migrations():
            if m_app == app:
                print(f" [{'X' if (app, name) in applied else ' '}] {name}")


def shell(args):
    parser = argparse.ArgumentParser(prog="manage.py shell")
    parser.add_argument("-c", "--command")
    opts = parser.parse_args(args)
    source = opts.command if opts.command is not None else sys.stdin.read()
    namespace = {"__name__": "__main__"}
    if sys.stdin.isatty() and opts.command is None:
        code.interact(local=namespace)
    else:
        exec(compile(source, "<shell>", "exec"), namespace)


def check(args):
    _migrations()
    print("System check identified no issues (0 silenced).")


COMMANDS = {"migrate": migrate, "showmigrations": showmigrations, "shell": shell,
            "check": check}


def execute_from_command_line(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        sys.exit(f"Unknown command: {argv[1] if len(argv) > 1 else ''!r}. "
                 f"Available (stand-in): {', '.join(COMMANDS)}")
    COMMANDS[argv[1]](argv[2:])
