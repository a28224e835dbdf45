"""logind's bus interface (org.freedesktop.login1): what sd-login's files do not say.

``connection`` owns the socket (jeepney parses and builds the messages), ``logind`` follows
logind's properties and signals into a :class:`~login_exporter.bus.view.Presence`, ``dirwatch``
wakes it when logind changes what it does not announce. The agent drives all of it from its
one selector; the collector only ever sees a Presence.
"""

from login_exporter.bus.connection import SYSTEM_BUS, socket_path
from login_exporter.bus.logind import LogindBus
from login_exporter.bus.view import DISCONNECTED, Presence

__all__ = ["DISCONNECTED", "SYSTEM_BUS", "LogindBus", "Presence", "socket_path"]
