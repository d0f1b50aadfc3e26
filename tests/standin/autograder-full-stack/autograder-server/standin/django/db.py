"""django.db stand-in: the database client and a small ORM.

The client speaks the postgres stand-in image's protocol (one JSON request per connection,
statements run in one transaction, data kept in the image's PGDATA volume) to
DATABASES["default"]'s HOST:PORT with its USER, PASSWORD and NAME, so a wrong password or an
unreachable host fails as it would with PostgreSQL.
"""

import json
import socket

from django.conf import settings


class Error(Exception):
    pass


class OperationalError(Error):
    pass


class IntegrityError(Error):
    pass


class ObjectDoesNotExist(Exception):
    pass


class MultipleObjectsReturned(Exception):
    pass


class ValidationError(Exception):
    pass


def execute(*statements):
    """Run (sql, params) statements in one transaction; return the last one's rows."""
    db = settings.DATABASES["default"]
    request = {"user": db["USER"], "password": db["PASSWORD"], "database": db["NAME"],
               "statements": [[sql, list(params)] for sql, params in statements]}
    try:
        with socket.create_connection((db["HOST"], int(db["PORT"])), timeout=30) as sock:
            sock.sendall((json.dumps(request) + "\n").encode())
            reply = json.loads(sock.makefile().readline() or "{}")
    except (OSError, ValueError) as exc:
        raise OperationalError(
            f'could not connect to server: {exc}\n\tIs the server running on host "{db["HOST"]}"'
            f' and accepting TCP/IP connections on port {db["PORT"]}?') from exc
    if "error" in reply:
        error = reply["error"]
        raise (IntegrityError if "UNIQUE constraint" in error else OperationalError)(error)
    return reply.get("rows", [])


class QuerySet(list):
    def exists(self):
        return bool(self)

    def first(self):
        return self[0] if self else None

    def count(self):
        return len(self)


class Manager:
    def __set_name__(self, owner, name):
        self.model = owner

    def _where(self, lookups):
        cols = []
        for key in lookups:
            if key not in self.model.fields and key not in ("pk", "id"):
                raise ValueError(f"Cannot resolve keyword {key!r} into field of "
                                 f"{self.model.__name__}")
            cols.append("id" if key == "pk" else key)
        clause = " AND ".join(f"{c} = ?" for c in cols) or "1"
        return clause, [self.model.to_db(v) for v in lookups.values()]

    def filter(self, **lookups):
        clause, params = self._where(lookups)
        rows = execute((f"SELECT id, {', '.join(self.model.fields)} FROM {self.model.table}"
                        f" WHERE {clause} ORDER BY id", params))
        return QuerySet(self.model.from_row(r) for r in rows)

    def all(self):
        return self.filter()

    def get(self, **lookups):
        found = self.filter(**lookups)
        if not found:
            raise self.model.DoesNotExist(f"{self.model.__name__} matching query does not exist.")
        if len(found) > 1:
            raise MultipleObjectsReturned(f"get() returned more than one {self.model.__name__}")
        return found[0]

    def create(self, **values):
        obj = self.model(**values)
        obj.save()
        return obj

    def get_or_create(self, defaults=None, **lookups):
        try:
            return self.get(**lookups), False
        except self.model.DoesNotExist:
            return self.create(**{**lookups, **(defaults or {})}), True

    def validate_and_create(self, **values):
        try:
            return self.create(**values)
        except IntegrityError as exc:
            raise ValidationError(f"{self.model.__name__} with these values already exists: "
                                  f"{values}") from exc


class Model:
    table = ""
    fields = {}  # name: (python type, default)
    objects = Manager()

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        cls.DoesNotExist = type("DoesNotExist", (ObjectDoesNotExist,), {})
        cls.objects = Manager()
        cls.objects.__set_name__(cls, "objects")

    def __init__(self, id=None, **values):
        self.pk = self.id = id
        for name, (_type, default) in self.fields.items():
            setattr(self, name, values.pop(name, default))
        if values:
            raise TypeError(f"{type(self).__name__}() got unexpected fields {sorted(values)}")

    @staticmethod
    def to_db(value):
        return int(value) if isinstance(value, bool) else value

    @classmethod
    def from_row(cls, row):
        values = {name: typ(v) for (name, (typ, _)), v in zip(cls.fields.items(), row[1:], strict=True)}
        return cls(id=row[0], **values)

    def save(self):
        names = list(self.fields)
        values = [self.to_db(getattr(self, n)) for n in names]
        if self.pk is None:
            rows = execute(
                (f"INSERT INTO {self.table} ({', '.join(names)})"
                 f" VALUES ({', '.join('?' for _ in names)})", values),
                (f"SELECT id FROM {self.table} WHERE rowid = last_insert_rowid()", []))
            self.pk = self.id = rows[0][0]
        else:
            execute((f"UPDATE {self.table} SET {', '.join(f'{n} = ?' for n in names)}"
                     " WHERE id = ?", values + [self.pk]))

    def __repr__(self):
        first = next(iter(self.fields), None)
        return f"<{type(self).__name__}: {getattr(self, first) if first else self.pk}>"
