"""Where artifact blobs live: the named ``artifacts`` storage of ``settings.STORAGES``.

The local filesystem (``MEDIA_ROOT``) by default; S3 through django-storages when
``AWS_STORAGE_BUCKET_NAME`` is set (see ``config/settings/components/pipeline.py``).
Blobs are content-addressed: the key is derived from the sha256 of the bytes, so a key's
content never changes and one blob serves every artifact row with that content.
"""

import hashlib
import re

from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages

from common.logging import get_logger

logger = get_logger(__name__)

ARTIFACTS_STORAGE_ALIAS = "artifacts"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def artifact_storage() -> Storage:
    """The storage backend that holds artifact blobs."""
    return storages[ARTIFACTS_STORAGE_ALIAS]


def sha256_hex(data: bytes) -> str:
    """The lowercase hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def blob_key(sha256: str) -> str:
    """The storage key of the blob with this digest: ``blobs/<first two hex>/<sha256>``."""
    if not _SHA256.match(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return f"blobs/{sha256[:2]}/{sha256}"


def blob_put(*, data: bytes) -> tuple[str, str]:
    """Store ``data`` once under its content address; return ``(sha256, key)``.

    An existing blob is never rewritten. Two writers racing on one new blob write the same
    bytes; on a storage that refuses to overwrite, the loser's renamed copy is removed.
    """
    sha = sha256_hex(data)
    key = blob_key(sha)
    storage = artifact_storage()
    if storage.exists(key):
        return sha, key
    saved = storage.save(key, ContentFile(data))
    if saved != key:
        # Someone else wrote the same content between our check and our save.
        storage.delete(saved)
    logger.info("artifact.blob_written", sha256=sha, size=len(data))
    return sha, key


def blob_get(*, key: str) -> bytes:
    """The bytes of the blob stored under ``key``."""
    with artifact_storage().open(key, "rb") as handle:
        return handle.read()
