"""Stand-in migration: the tables the bootstrap writes (users, courses)."""

operations = [
    "CREATE TABLE auth_user (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " username VARCHAR(150) NOT NULL UNIQUE, is_superuser BOOLEAN NOT NULL DEFAULT 0)",
    "CREATE TABLE core_course (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name VARCHAR(255) NOT NULL UNIQUE)",
]
