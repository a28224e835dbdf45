"""login-exporter: a Prometheus exporter for systemd-logind, event-driven through sd-login."""

__version__ = "0.1.0"
