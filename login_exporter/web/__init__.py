"""The HTTP side, in three rooms: binding listen addresses (``listen``), choosing the format
(``negotiation``) and serving (``server``: the ``acceptor``, one ``exchange`` per connection,
the ``routes``); plus the ``landing`` page and the ``clientcert`` check of TLS clients."""

from login_exporter.web.landing import landing_page
from login_exporter.web.listen import bind_listen_addresses, parse_listen_address
from login_exporter.web.negotiation import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE
from login_exporter.web.routes import ExpositionSource
from login_exporter.web.server import WebServer

__all__ = [
    "OPENMETRICS_CONTENT_TYPE",
    "TEXT_CONTENT_TYPE",
    "ExpositionSource",
    "WebServer",
    "bind_listen_addresses",
    "landing_page",
    "parse_listen_address",
]
