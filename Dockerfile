# Jinshi Bridge (金石桥) application image: one image, several roles (see docker-compose.yml):
#   web     daphne -b 0.0.0.0 -p 8000 --proxy-headers outreach.asgi:application   (the default CMD)
#   media   python manage.py media_worker
#   jobs    python manage.py jobs_worker
#   migrate python manage.py migrate --noinput
# Settings come from the environment (outreach/settings/production.py); nothing secret is baked in.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=outreach.settings.production \
    JINSHI_VAR_DIR=/var/lib/jinshi

WORKDIR /app

# Dependencies first (this layer is rebuilt only when pyproject.toml changes). pyproject.toml pins every
# runtime dependency in [project].dependencies; the dev extra (test tools) stays out of the image. All of
# them install as wheels (aiortc, av and pylibsrtp bundle their codecs), so no compiler is needed.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --no-compile -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# An unprivileged user owns only the var directory (spool for recording pieces); the code stays root-owned.
RUN groupadd --system --gid 10001 jinshi \
    && useradd --system --uid 10001 --gid jinshi --home-dir /var/lib/jinshi --no-create-home \
        --shell /usr/sbin/nologin jinshi \
    && install -d -o jinshi -g jinshi -m 0750 /var/lib/jinshi /var/lib/jinshi/spool /var/lib/jinshi/media

COPY . .

# Static files are collected at build time (WhiteNoise serves them). Production settings refuse to load
# without DJANGO_SECRET_KEY, so this one RUN line gets a throwaway key: the build argument if given,
# otherwise a random one made on the spot. It is an ARG, not an ENV: it exists only for this command and
# is not in the image's environment. The database URL is a dummy too (collectstatic does not connect).
ARG COLLECTSTATIC_SECRET_KEY
RUN DJANGO_SECRET_KEY="${COLLECTSTATIC_SECRET_KEY:-$(python -c 'import secrets; print(secrets.token_urlsafe(50))')}" \
    DJANGO_ALLOWED_HOSTS=build.invalid \
    DATABASE_URL=sqlite:////tmp/collectstatic.sqlite3 \
    python manage.py collectstatic --noinput -v 0 \
    && rm -f /tmp/collectstatic.sqlite3

USER jinshi:jinshi
EXPOSE 8000

# Compose overrides the command per role; this default is the web role.
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "--proxy-headers", "outreach.asgi:application"]
