"""Checks of deploy/ (systemd, Prometheus, Kubernetes) and the Dockerfile with the real tools."""
