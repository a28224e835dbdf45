# login-exporter container image: Prometheus exporter for systemd-logind.
#
# Build:  docker build -t login-exporter .
#         podman build --format docker -t login-exporter .   (podman's default OCI format
#                                                             drops the HEALTHCHECK)
# Run:    docker run -d --name login-exporter --net=host \
#           -v /run/systemd:/run/systemd:ro --read-only --cap-drop=ALL \
#           --security-opt no-new-privileges login-exporter
#         (podman: add --read-only-tmpfs=false, else /tmp, /run and /var/tmp stay writable)
# The exporter reads the host's /run/systemd/{sessions,seats,users,machines} (mounted read-only)
# and serves http://HOST:9844/metrics. --net=host keeps the host's address as the instance; with
# a bridge network use -p 9844:9844 instead. Extra flags go after the image name, e.g.
#   docker run ... login-exporter --web.listen-address=127.0.0.1:9844 --log.format=json
# The HEALTHCHECK speaks plain HTTP on port 9844 without credentials: with TLS
# (tls_server_config), basic_auth_health: true or another port, override it (--health-cmd) or
# disable it (--no-healthcheck). basic_auth_users alone leaves /-/healthy open.
#
# Every Python dependency is pinned with its hashes in requirements.lock (`bash .ci/lock`
# regenerates it from pyproject.toml) and installed from wheels only: the image has no compiler.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements.lock requirements-build.lock pyproject.toml README.md ./
COPY login_exporter ./login_exporter
# pip and setuptools (pinned in requirements-build.lock) live in a throw-away venv (/opt/pip,
# builder only). It builds the project's wheel, then installs into the runtime venv from
# outside (pip --python), so the runtime venv never holds pip or setuptools.
# The sd-login binding uses cffi in ABI mode (dlopen): no compiler or headers are needed.
RUN python3 -m venv /opt/pip \
    && /opt/pip/bin/pip install --no-cache-dir --require-hashes --only-binary=:all: \
       -r requirements-build.lock \
    && /opt/pip/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation -w /wheels /src \
    && python3 -m venv --without-pip /opt/login-exporter \
    && /opt/pip/bin/pip --python /opt/login-exporter/bin/python install --no-cache-dir \
       --require-hashes --only-binary=:all: --no-deps -r requirements.lock \
    && /opt/pip/bin/pip --python /opt/login-exporter/bin/python install --no-cache-dir \
       --no-index --no-deps /wheels/login_exporter-*.whl \
    && /opt/pip/bin/pip --python /opt/login-exporter/bin/python check \
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
# different base lacks it, and check that the installed exporter starts. The official base
# carries pip, setuptools and wheel in /usr/local: build tools the exporter never uses (and
# setuptools < 70 has CVE-2024-6345), so they go.
RUN python3 -c "import ctypes; ctypes.CDLL('libsystemd.so.0')" \
    && login-exporter --version \
    && if python3 -m pip --version >/dev/null 2>&1; then \
         python3 -m pip uninstall -y -q pip setuptools wheel; \
       fi
# nobody:nogroup, numeric so that Kubernetes can verify runAsNonRoot.
USER 65534:65534
EXPOSE 9844
# ProxyHandler({}): urllib would otherwise send the check through http_proxy, which Docker
# copies into containers from its client configuration.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python3", "-c", "import urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:9844/-/healthy', timeout=4)"]
ENTRYPOINT ["login-exporter"]
CMD ["--web.listen-address=:9844"]
