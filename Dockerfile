# The platform image: web, workers, beat and flower all run from it (docker-compose.yml).
# The dashboard's browser packages, exactly as package-lock.json pins them.
FROM node:20-bookworm-slim AS browser-packages
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production

RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      bubblewrap util-linux e2fsprogs libseccomp2 libpq5 git \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt requirements-sandbox.txt ./
RUN pip install -r requirements.txt
# The sandbox's own minimal environment (what `make sandbox` builds): generated code and
# its checks run with these packages, not the platform's.
RUN python -m venv /app/.venv-sandbox \
 && /app/.venv-sandbox/bin/pip install -r requirements-sandbox.txt

COPY . .
COPY --from=browser-packages /app/node_modules ./node_modules
RUN useradd --create-home --uid 10001 app \
 && mkdir -p /app/var/media /app/var/static \
 && DJANGO_SECRET_KEY=build-only DJANGO_CSRF_TRUSTED_ORIGINS=https://build.invalid \
    SECRETS_ENCRYPTION_KEYS="$(python -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())')" \
    python manage.py collectstatic --noinput \
 && chown -R app:app /app/var

USER app
EXPOSE 8001
CMD ["python", "-m", "config.serve", "-b", "0.0.0.0", "-p", "8001", "config.asgi:application"]
