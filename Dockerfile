# login-exporter container image: Prometheus exporter for systemd-logind.
#
# Build:  docker build -t login-exporter .
# Run:    docker run -d --name login-exporter --net=host \
#           -v /run/systemd:/run/systemd:ro --read-only --cap-drop=ALL \
#           --security-opt no-new-privileges login-exporter
# The exporter reads the host's /run/systemd/{sessions,seats,users,machines} (mounted read-only)
# and serves http://HOST:9844/metrics. --net=host keeps the host's address as the instance; with
# a bridge network use -p 9844:9844 instead. Extra flags go after the image name, e.g.
#   docker run ... login-exporter --web.listen-address=127.0.0.1:9844 --log.format=json
# The HEALTHCHECK speaks plain HTTP on port 9844: with --web.config.file (TLS) or another port,
# override it (--health-cmd) or disable it (--no-healthcheck).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# The sd-login binding uses cffi in ABI mode (dlopen): no compiler or headers are needed.
COPY pyproject.toml README.md ./
COPY login_exporter ./login_exporter
RUN python3 -m venv /opt/login-exporter \
    && /opt/login-exporter/bin/pip install --no-cache-dir /src \
    && /opt/login-exporter/bin/python -m compileall -q /opt/login-exporter

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="login-exporter" \
      org.opencontainers.image.description="Prometheus exporter for systemd-logind: sessions, seats, users and machines" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/login-exporter/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=builder /opt/login-exporter /opt/login-exporter
# libsystemd0 is part of every Debian base image (apt depends on it); fail the build if a
# different base lacks it, and check that the installed exporter starts.
RUN python3 -c "import ctypes; ctypes.CDLL('libsystemd.so.0')" \
    && login-exporter --version
# nobody:nogroup, numeric so that Kubernetes can verify runAsNonRoot.
USER 65534:65534
EXPOSE 9844
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9844/-/healthy', timeout=4)"]
ENTRYPOINT ["login-exporter"]
CMD ["--web.listen-address=:9844"]
