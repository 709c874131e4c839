# syntax=docker/dockerfile:1
# stream-monitor: `docker build -t stream-monitor .` then
#   docker run --rm -p 9108:9108 stream-monitor run --bootstrap-servers HOST:9092 ...
# The image's default command is `stream-monitor run`; every option can also come from
# STREAM_MONITOR_* environment variables (see README.md).

# --- build: compile the native core (Rust) and install the package into a virtualenv ---
# The official Rust image's toolchain is copied into the Python image, so the extension is
# built against the very Python of the runtime stage; neither the toolchain nor the C
# compiler reaches the runtime image.
FROM rust:1-slim-bookworm AS rust

FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:$PATH

RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
COPY --from=rust /usr/local/rustup /usr/local/rustup
COPY --from=rust /usr/local/cargo /usr/local/cargo

RUN python -m venv /opt/venv
WORKDIR /src
# README.m[d]: copied when present (pyproject's `readme`), no error when absent.
COPY pyproject.toml README.m[d] ./
COPY native ./native
COPY stream_monitor ./stream_monitor
RUN /opt/venv/bin/pip install .

# --- runtime ---------------------------------------------------------------------------
FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# A non-root user. /data belongs to it, so a fresh named volume mounted there is
# writable (Docker copies the directory's ownership into an empty volume).
RUN groupadd --system --gid 10001 monitor \
 && useradd --system --uid 10001 --gid monitor --home-dir /home/monitor --create-home \
      --shell /usr/sbin/nologin monitor \
 && mkdir -p /data \
 && chown monitor:monitor /data

COPY --from=build /opt/venv /opt/venv

WORKDIR /home/monitor
USER 10001:10001

# /metrics, /healthz, /readyz, /status (--metrics-port, default 9108)
EXPOSE 9108

# The slim image has no curl: python's urllib. Non-2xx answers raise, so exit 1.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=3)"]

# Exec form: stream-monitor is PID 1 and gets SIGTERM (finish batch, commit, leave group).
ENTRYPOINT ["stream-monitor"]
CMD ["run"]
