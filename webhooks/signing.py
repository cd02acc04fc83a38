"""The Standard Webhooks signature, made with the specification's own Python library.

``webhook-signature: v1,<base64 of HMAC-SHA256 over "<webhook-id>.<webhook-timestamp>.<body>">``
keyed with the base64-decoded part of the endpoint's ``whsec_`` secret. The timestamp is the
attempt's (receivers refuse messages older than five minutes), the id is the message's (the
same on every attempt, so a receiver drops duplicates).

An endpoint's secret is made here: ``whsec_`` and the base64 of 32 random bytes, as the
specification writes them (its reference libraries accept it as it is). The HMAC needs the
secret itself, so it cannot be hashed: it is kept encrypted at rest (``common.secrets``), shown
once, and decrypted only by the delivery task.
"""

from __future__ import annotations

import base64
import math
import secrets
from datetime import datetime

from standardwebhooks import Webhook

USER_AGENT = "aiflow-webhooks/1"
PREFIX = "whsec_"
SECRET_BYTES = 32


def secret_generate() -> str:
    """A new signing secret, ``whsec_<base64 of 32 random bytes>``."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def signed_headers(*, secret: str, message_id: str, at: datetime, body: str) -> dict[str, str]:
    """The headers of one attempt: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``."""
    signature = Webhook(secret).sign(msg_id=message_id, timestamp=at, data=body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(math.floor(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
