#!/usr/bin/env bash
# Flower with basic auth from FLOWER_BASIC_AUTH ("user:password"). Without it, a random
# password is made for this start and printed once, so Flower is never open to everyone.
set -euo pipefail
auth="${FLOWER_BASIC_AUTH:-}"
if [ -z "$auth" ]; then
  auth="admin:$(python -c 'import secrets; print(secrets.token_urlsafe(12))')"
  echo "flower: FLOWER_BASIC_AUTH is not set; this start uses ${auth}" >&2
fi
# --enable_events=False: Flower would otherwise tell every worker to send task events every
# 5 s; workers send them only when FLOWER_TASK_EVENTS says so (config/settings/base.py).
exec celery -A config.celery_light flower --port="${FLOWER_PORT:-5555}" --address="${FLOWER_ADDRESS:-127.0.0.1}" --basic-auth="$auth" --enable_events=False
