# One image for every Conveyor process. Its default command is the API: the Procfile's
# `web` on port 8000. docker-compose.yml runs the other processes from the same image
# with the Procfile's commands (migrate = `release`, worker, agents, beat, flower), and
# Procfile platforms that build this file find the Procfile in /app.
# Nothing secret is baked in: SECRET_KEY, DATABASE_URL, REDIS_URL and the storage
# settings come from the environment at run time. The dev tooling (core/dev) and the
# tests are left out by .dockerignore. See docs/deployment.md.

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: a virtualenv with the project and its runtime dependencies -------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Dependencies get their own layer, built from pyproject.toml alone (with empty
# packages), so a code change does not reinstall them.
COPY pyproject.toml README.md constraints.txt ./
RUN mkdir api core worker \
    && touch api/__init__.py core/__init__.py worker/__init__.py \
    && pip install -c constraints.txt . \
    && pip uninstall --yes conveyor
COPY api ./api
COPY core ./core
COPY worker ./worker
RUN pip install --no-deps .

# --- runtime ----------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

# Every process imports the code from /app, where alembic.ini and migrations/ also
# live, so `alembic upgrade head` and `conveyor migrate` find them.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app

RUN groupadd --system --gid 10001 conveyor \
    && useradd --system --uid 10001 --gid conveyor --no-create-home \
       --home-dir /app --shell /usr/sbin/nologin conveyor

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY alembic.ini Procfile ./
COPY migrations ./migrations
COPY api ./api
COPY core ./core
COPY worker ./worker

# The code stays root-owned and read-only to the process; numeric ids satisfy
# runAsNonRoot checks.
USER 10001:10001

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers", "--no-server-header"]
