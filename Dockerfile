# syntax=docker/dockerfile:1
# One Dockerfile for every ocrmesh service. docker-compose.yml builds one image per service
# with two build arguments, so that each image carries only its own dependencies:
#   SERVICE  the module the image runs (`python -m $SERVICE`, as in the Procfile)
#   EXTRAS   the pyproject extras it needs, space separated:
#            auth_svc: auth | ocr_svc: ocr, or "ocr keras" to add the keras-ocr engine |
#            notifier: notifier | gateway: gateway
#   APT_PACKAGES  Debian packages the runtime needs besides Python, space separated; empty
#            for every image but ocr_svc's, which carries Tesseract's models for the
#            languages of ocr_svc/languages.py (tesseract-ocr-eng, -vie, ...)
# Example: docker build --build-arg SERVICE=ocr_svc --build-arg EXTRAS="ocr tesseract" \
#            --build-arg APT_PACKAGES="tesseract-ocr-eng tesseract-ocr-vie" -t ocrmesh-ocr .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a virtual environment with the locked dependencies and the project ----------
FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS=""
ENV UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/app/.venv
# The uv version the Makefile pins, so the lock file reads the same here and there.
RUN pip install --no-cache-dir --disable-pip-version-check uv==0.13.8
WORKDIR /src
# Dependencies first, exactly as locked (--frozen: never re-resolved): this layer is reused
# while only the code changes.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project \
        $(for extra in $EXTRAS; do printf -- '--extra %s ' "$extra"; done)
COPY README.md ./
COPY ocrmesh ./ocrmesh
COPY auth_svc ./auth_svc
COPY ocr_svc ./ocr_svc
COPY notifier ./notifier
COPY gateway ./gateway
# The CLI's code comes with the project; its libraries (the `cli` extra) do not.
COPY ocrmesh_cli ./ocrmesh_cli
# The project as a regular (not editable) install: the runtime stage needs /app/.venv only.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable \
        $(for extra in $EXTRAS; do printf -- '--extra %s ' "$extra"; done)

# ---- runtime: the environment on a slim Python, as an unprivileged user ------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE=""
ARG APT_PACKAGES=""
RUN test -n "$SERVICE" || { echo "build with --build-arg SERVICE=auth_svc|ocr_svc|notifier|gateway" >&2; exit 1; }
# Debian packages only the image that asks for them carries: for ocr_svc, Tesseract's models
# (tesseract-ocr-<model>, into /usr/share/tesseract-ocr/5/tessdata, where ocr_svc looks; the
# tesserocr wheel brings libtesseract itself). The lists go in the same layer, adding nothing.
RUN if [ -n "$APT_PACKAGES" ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends $APT_PACKAGES \
        && rm -rf /var/lib/apt/lists/*; \
    fi
# MALLOC_ARENA_MAX: glibc's malloc arenas at most 2 per process instead of 8 per core, so a
# thread started late does not step the memory up (docs/reliability.md, "Memory over time").
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MALLOC_ARENA_MAX=2 \
    PATH=/app/.venv/bin:$PATH \
    SERVICE=${SERVICE}
# Writable places only where a service writes: var/ (notifier health file, mail files,
# keras-ocr weights) and /keys (the auth signing key volume). Named volumes mounted there
# start with this ownership. The code and the environment stay owned by root: read-only.
RUN groupadd --system --gid 10001 ocrmesh \
    && useradd --system --uid 10001 --gid ocrmesh --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin ocrmesh \
    && mkdir -p /app/var/mail /app/var/keras-ocr /keys \
    && chown -R 10001:10001 /app/var /keys
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
USER 10001:10001
# The same entrypoint as `make up` (Procfile): python -m <service>. docker-compose.yml
# names the command explicitly as well.
CMD ["sh", "-c", "exec python -m \"$SERVICE\""]
