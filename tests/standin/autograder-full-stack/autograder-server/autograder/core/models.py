"""The core models the deployment guide's bootstrap touches (stand-in: see standin/django)."""

from django.contrib.auth.models import User
from django.db import Model, execute


class Course(Model):
    table = "core_course"
    fields = {"name": (str, "")}

    @property
    def admins(self):
        return _CourseAdmins(self)


class _CourseAdmins:
    """course.admins: add(*users), remove(*users), all()."""

    def __init__(self, course):
        self.course = course

    def add(self, *users):
        execute(*[("INSERT OR IGNORE INTO core_course_admins (course_id, user_id) VALUES (?, ?)",
                   [self.course.pk, u.pk]) for u in users])

    def remove(self, *users):
        execute(*[("DELETE FROM core_course_admins WHERE course_id = ? AND user_id = ?",
                   [self.course.pk, u.pk]) for u in users])

    def all(self):
        ids = [r[0] for r in execute(
            ("SELECT user_id FROM core_course_admins WHERE course_id = ?", [self.course.pk]))]
        return [u for u in User.objects.all() if u.pk in ids]


__all__ = ["Course", "User"]
