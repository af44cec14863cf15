# syntax=docker/dockerfile:1
# CPU image by default: python:3.11-slim with torch pinned by constraints.txt, from the
# PyTorch CPU wheel index (PyPI's Linux torch wheel would pull the CUDA libraries).
#
#   docker build -t fewshot .
#   docker run -p 8000:8000 -e FEWSHOT_ADMIN_KEY="$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')" fewshot
#
# Build arguments:
#   TORCH_INDEX_URL  where torch comes from (default: the PyTorch CPU wheel index; empty:
#                    PyPI, whose Linux wheel bundles the CUDA libraries, several GB)
#   BASE_IMAGE       another Python 3.11+ base, e.g. one that already has a CUDA torch
#   USE_CONSTRAINTS  "false" skips constraints.txt and the torch step, so a torch in
#                    BASE_IMAGE is kept (TORCH_INDEX_URL is then not used)
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG USE_CONSTRAINTS=true
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# torch first, in its own layer, so that code changes do not reinstall it.
COPY constraints.txt ./
RUN set -eux; \
    if [ "$USE_CONSTRAINTS" = "true" ]; then \
        if [ -n "$TORCH_INDEX_URL" ]; then \
            pip install -c constraints.txt --index-url "$TORCH_INDEX_URL" torch; \
        else \
            pip install -c constraints.txt torch; \
        fi; \
    fi

COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY models ./models
COPY migrations ./migrations
RUN set -eux; \
    if [ "$USE_CONSTRAINTS" = "true" ]; then \
        pip install -c constraints.txt ".[postgres]"; \
    else \
        pip install ".[postgres]"; \
    fi

# Non-root at run time; the default SQLite database lives in the volume /data.
RUN set -eux; \
    useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin fewshot; \
    mkdir -p /data; \
    chown fewshot:fewshot /data
VOLUME ["/data"]
# Production by default: the server refuses to start without a strong FEWSHOT_ADMIN_KEY
# (docker run -e FEWSHOT_ADMIN_KEY=...) and serves no /docs; FEWSHOT_ENVIRONMENT=development
# for a throwaway container.
ENV FEWSHOT_ENVIRONMENT=production \
    FEWSHOT_DATABASE_URL=sqlite:////data/fewshot.db \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1
USER fewshot

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]
CMD ["fewshot", "serve", "--host", "0.0.0.0", "--port", "8000"]
