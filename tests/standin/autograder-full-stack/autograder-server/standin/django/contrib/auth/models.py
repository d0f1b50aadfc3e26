from django.db import Model


class User(Model):
    table = "auth_user"
    fields = {"username": (str, ""), "is_superuser": (bool, False)}
