"""Moved to tests/support/proc.py; this name stays only for tests/reliability/test_http.py.

Delete once that file imports ``from tests.support import proc`` (it belongs to the web work).
"""

from tests.support.proc import cpu_seconds as cpu_seconds
from tests.support.proc import sockets_of as sockets_of
from tests.support.proc import writable_files as writable_files
