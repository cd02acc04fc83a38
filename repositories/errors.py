"""Errors of imports, git, delivery and forge webhooks; each a plain ``{"detail", "code"}``."""

from rest_framework import status

from common.errors import ApplicationError


class ImportRefused(ApplicationError):
    """An import broke a rule (a path outside the tree, a limit, a local source); ``code``
    names the rule, ``detail`` says it in plain words, naming the entry."""

    code = "import_refused"


class GitFailed(ApplicationError):
    """git could not do what was asked (no such repository or ref, credentials refused, the
    remote unreachable, too slow or too large); ``code`` says which."""

    code = "git_failed"


class DeliveryRefused(ApplicationError):
    """A delivery asked for something unusable (a branch name, an author), or for nothing."""

    code = "delivery_refused"


class DeliveryFailed(ApplicationError):
    """The forge refused or failed a delivery step (its API answered an error)."""

    status_code = status.HTTP_502_BAD_GATEWAY
    code = "delivery_failed"


class WebhookRejected(ApplicationError):
    """A forge webhook whose signature (or token) does not verify: nothing in it is read."""

    status_code = status.HTTP_401_UNAUTHORIZED
    code = "bad_signature"
