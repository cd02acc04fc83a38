"""Accounts: the custom user (login by email)."""

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models


class EmailUserManager(UserManager):
    """Creates users whose login is their email, normalised to lower case."""

    def get_by_natural_key(self, username: str | None) -> "User":
        return self.get(**{f"{self.model.USERNAME_FIELD}__iexact": username})


class User(AbstractUser):
    """A person using the platform. Email is unique and is the login; username is a label."""

    email = models.EmailField("email address", unique=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = ["username"]

    objects = EmailUserManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(models.functions.Lower("email"), name="user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email
