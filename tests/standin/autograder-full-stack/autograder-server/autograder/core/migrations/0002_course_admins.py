"""Stand-in migration: course administrators."""

operations = [
    "CREATE TABLE core_course_admins (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " course_id INTEGER NOT NULL REFERENCES core_course (id),"
    " user_id INTEGER NOT NULL REFERENCES auth_user (id), UNIQUE (course_id, user_id))",
]
