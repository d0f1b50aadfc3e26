#!/usr/bin/env python3
"""Stand-ins for the two images the autograder stack pulls (postgres, redis), which cannot be
pulled here. Baked into postgres:<version> and redis:latest by bed/images.py.

postgres: like the real image, initialises $PGDATA on first start with POSTGRES_USER (default
postgres) and POSTGRES_PASSWORD (refuses to start without one) or, as the image's file_env
does, the content of POSTGRES_PASSWORD_FILE when POSTGRES_PASSWORD is empty (both set: it
refuses to start), keeps that password when the environment later changes, and refuses a
data directory another major version ($PG_MAJOR) initialised (an upgrade needs a dump and
restore, as upstream's README describes). It serves a line protocol on 5432 ($PGPORT): one
JSON request per connection, {"user", "password", "database", "statements": [[sql, params],
...]}, run in one transaction on $PGDATA/standin.sqlite3; the answer is {"rows": <rows of
the last statement>} or {"error": "..."}. Data therefore lives in the pgdata volume, on the
database node.

pg_dump, psql (commands in the postgres image, as the real one has them; the user and
database arguments are accepted and not checked, as the real image trusts local sockets):
`pg_dump` prints the database as SQL (each table dropped, then made and filled again, as
`pg_dump --clean --if-exists` does); `psql -f FILE` runs FILE in one transaction and exits
3 on the first error (ON_ERROR_STOP), nothing changed; when FILE starts with `DROP SCHEMA
public CASCADE; ...` every table is dropped first, in that transaction; when it is `ALTER
ROLE CURRENT_USER PASSWORD '...'` the server takes that password from then on. `psql -h HOST
-U USER -c ... DATABASE` connects as the app does, with $PGPASSWORD, which the server checks.

redis: answers PING/SET/GET/DEL/EXISTS over RESP on 6379, data kept in /data/dump.json.
"""

import hashlib
import json
import os
import signal
import socket
import socketserver
import sqlite3
import sys
import threading
from pathlib import Path


def log(msg: str) -> None:
    print(msg, flush=True)


def file_env(var: str, default: str = "") -> str:
    """The official images' file_env: $VAR, else the content of the file $VAR_FILE names
    (trailing newlines dropped, as the shell's $(< file) does); an empty value counts as
    unset, both set is an error."""
    value, file = os.environ.get(var, ""), os.environ.get(f"{var}_FILE", "")
    if value and file:
        sys.exit(f"error: both {var} and {var}_FILE are set (but are exclusive)")
    if file:
        return Path(file).read_text().rstrip("\n")
    return value or default


def _auth_file() -> Path:
    return Path(os.environ.get("PGDATA", "/var/lib/postgresql/data")) / "standin-auth.json"


def _password_sha256(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def _write_auth(auth: dict) -> None:
    """The auth file replaced whole (a reader never sees half of it)."""
    auth_file = _auth_file()
    tmp = auth_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(auth))
    os.replace(tmp, auth_file)


def postgres() -> None:
    auth_file = _auth_file()
    data = auth_file.parent
    major = os.environ.get("PG_MAJOR", "standin")
    password = file_env("POSTGRES_PASSWORD")  # on every start, as the image's entrypoint
    if not auth_file.exists():
        if not password:
            sys.exit("Error: Database is uninitialized and superuser password is not specified.\n"
                     "       You must specify POSTGRES_PASSWORD to a non-empty value for the\n"
                     "       superuser.")
        user = os.environ.get("POSTGRES_USER", "postgres")
        data.mkdir(parents=True, exist_ok=True)
        (data / "PG_VERSION").write_text(major + "\n")
        _write_auth({"user": user, "database": os.environ.get("POSTGRES_DB", user),
                     "password_sha256": _password_sha256(password)})
        log("initdb: database cluster initialised")
    else:
        log("PostgreSQL Database directory appears to contain a database; Skipping initialization")
        initialised_by = (data / "PG_VERSION").read_text().strip()
        if initialised_by != major:
            sys.exit(f"FATAL:  database files are incompatible with server\nDETAIL:  The data "
                     f"directory was initialized by PostgreSQL version {initialised_by}, which is "
                     f"not compatible with this version {major}.")
    lock = threading.Lock()

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            try:
                req = json.loads(self.rfile.readline())
                auth = json.loads(auth_file.read_text())  # psql may have set a new password
                if (req.get("user") != auth["user"]
                        or _password_sha256(str(req.get("password"))) != auth["password_sha256"]):
                    reply = {"error": f'FATAL:  password authentication failed for user '
                                      f'"{req.get("user")}"'}
                elif req.get("database") != auth["database"]:
                    reply = {"error": f'FATAL:  database "{req.get("database")}" does not exist'}
                else:
                    with lock, sqlite3.connect(data / "standin.sqlite3") as db:
                        rows = []
                        for sql, params in req.get("statements", []):
                            rows = db.execute(sql, params).fetchall()
                    reply = {"rows": rows}
            except (ValueError, sqlite3.Error) as exc:
                reply = {"error": f"ERROR:  {exc}"}
            self.wfile.write((json.dumps(reply) + "\n").encode())

    port = int(os.environ.get("PGPORT", "5432"))
    serve(Handler, port, "database system is ready to accept connections")


def _database() -> Path:
    return Path(os.environ.get("PGDATA", "/var/lib/postgresql/data")) / "standin.sqlite3"


def pg_dump() -> None:
    with sqlite3.connect(_database()) as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                           "AND name NOT LIKE 'sqlite_%'")]  # sqlite's own
        # one transaction, the drops in it: a load that fails changes nothing
        sys.stdout.write("-- stand-in pg_dump\nBEGIN TRANSACTION;\n")
        for table in tables:
            sys.stdout.write(f'DROP TABLE IF EXISTS "{table}";\n')
        for line in db.iterdump():
            if line != "BEGIN TRANSACTION;":
                sys.stdout.write(line + "\n")


def _psql_connect_check() -> None:
    """`psql -h HOST -U USER -c ... DATABASE` as the app connects: over the network, with
    $PGPASSWORD, which the server checks; psql's message and exit 2 when it refuses."""
    argv = sys.argv
    request = {"user": argv[argv.index("-U") + 1], "password": os.environ.get("PGPASSWORD"),
               "database": argv[-1], "statements": [["SELECT 1", []]]}
    host = argv[argv.index("-h") + 1]
    with socket.create_connection((host, int(os.environ.get("PGPORT", "5432"))), 10) as conn:
        conn.sendall((json.dumps(request) + "\n").encode())
        reply = json.loads(conn.makefile().readline())
    if "error" in reply:
        print(f'psql: error: connection to server at "{host}", port 5432 failed: '
              f'{reply["error"]}', file=sys.stderr)
        sys.exit(2)
    print(" ?column? \n----------\n        1\n(1 row)")


def _set_password(statement: str) -> None:
    """ALTER ROLE CURRENT_USER PASSWORD '...': the server's next connection takes it."""
    quoted = statement.split("PASSWORD '", 1)[1].rsplit("'", 1)[0]
    auth = json.loads(_auth_file().read_text())
    auth["password_sha256"] = _password_sha256(quoted.replace("''", "'"))
    _write_auth(auth)


def psql() -> None:
    if "-c" in sys.argv:
        return _psql_connect_check()
    path = sys.argv[sys.argv.index("-f") + 1]
    text = Path(path).read_text()
    if text.startswith("ALTER ROLE CURRENT_USER PASSWORD "):
        return _set_password(text)
    db = sqlite3.connect(_database(), isolation_level=None)
    first, _, script = text.partition("\n")
    if first.startswith("DROP SCHEMA public CASCADE;"):  # the database emptied, in the dump's
        tables = [t for (t,) in db.execute(  # transaction (as under --single-transaction)
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
        begin = "BEGIN TRANSACTION;\n"
        script = script.replace(begin, begin + "".join(f'DROP TABLE IF EXISTS "{t}";\n'
                                                       for t in tables), 1)
    else:
        script = f"{first}\n{script}"
    try:
        db.executescript(script)
    except sqlite3.Error as exc:
        if db.in_transaction:
            db.execute("ROLLBACK")
        print(f"psql:{path}: ERROR:  {exc}", file=sys.stderr)
        sys.exit(3)


def redis() -> None:
    dump = Path("/data/dump.json")
    store = json.loads(dump.read_text()) if dump.exists() else {}
    lock = threading.Lock()

    def save():
        tmp = dump.with_suffix(".tmp")
        tmp.write_text(json.dumps(store))
        os.replace(tmp, dump)

    def command(args):
        cmd = args[0].upper() if args else ""
        with lock:
            if cmd == "PING":
                return b"+PONG\r\n"
            if cmd == "SET" and len(args) >= 3:
                store[args[1]] = args[2]
                save()
                return b"+OK\r\n"
            if cmd == "GET" and len(args) == 2:
                if args[1] not in store:
                    return b"$-1\r\n"
                value = store[args[1]].encode()
                return b"$%d\r\n%s\r\n" % (len(value), value)
            if cmd in ("DEL", "EXISTS") and len(args) >= 2:
                found = [k for k in args[1:] if k in store]
                if cmd == "DEL":
                    for k in found:
                        del store[k]
                    save()
                return b":%d\r\n" % len(found)
        return f"-ERR unknown command '{cmd}'\r\n".encode()

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            while line := self.rfile.readline():
                if line.startswith(b"*"):
                    args = []
                    for _ in range(int(line[1:])):
                        size = int(self.rfile.readline()[1:])
                        args.append(self.rfile.read(size + 2)[:-2].decode())
                else:
                    args = line.decode().split()
                self.wfile.write(command(args))

    serve(Handler, 6379, "Ready to accept connections tcp")


def serve(handler, port: int, ready: str) -> None:
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer.daemon_threads = True
    with socketserver.ThreadingTCPServer(("0.0.0.0", port), handler) as server:
        log(ready)
        server.serve_forever()


if __name__ == "__main__":
    # PID 1 in its container: without a handler SIGTERM is ignored and every stop takes 10 s
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    {"postgres": postgres, "redis": redis, "pg_dump": pg_dump, "psql": psql}[
        os.path.basename(sys.argv[0]) if sys.argv[0].endswith(("pg_dump", "psql")) else sys.argv[1]]()
