#!/usr/bin/env bash
# Flower with basic auth from FLOWER_BASIC_AUTH ("user:password"). Without it, a random
# password is made for this start and printed once, so Flower is never open to everyone.
set -euo pipefail
auth="${FLOWER_BASIC_AUTH:-}"
if [ -z "$auth" ]; then
  auth="admin:$(python -c 'import secrets; print(secrets.token_urlsafe(12))')"
  echo "flower: FLOWER_BASIC_AUTH is not set; this start uses ${auth}" >&2
fi
exec celery -A config.celery_light flower --port="${FLOWER_PORT:-5555}" --address="${FLOWER_ADDRESS:-127.0.0.1}" --basic-auth="$auth"
