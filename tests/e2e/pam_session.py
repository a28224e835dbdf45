"""Open a real PAM session with a remote host, the way sshd does, and hold it open.

Runs INSIDE the e2e container (``python3 /project/tests/e2e/pam_session.py USER RHOST``).
pam_systemd marks a session remote only when PAM_RHOST is set to a non-local host, and only
sshd-like programs set it; so this calls libpam itself through ctypes:
pam_start(service, user), pam_set_item(PAM_RHOST), pam_open_session, then sleeps until SIGTERM,
and closes the session on the way out.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import signal
import sys
import time
from typing import Any

PAM_SUCCESS = 0
PAM_RHOST = 4
PAM_RUSER = 8
PAM_CONV_ERR = 19

CONV_FUNC = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p
)


class PamConv(ctypes.Structure):
    _fields_ = (("conv", CONV_FUNC), ("appdata_ptr", ctypes.c_void_p))


def _no_conversation(_n: int, _msg: Any, _resp: Any, _data: Any) -> int:
    # Session modules never need to ask anything; refuse if one does.
    return PAM_CONV_ERR


_CONV = CONV_FUNC(_no_conversation)


def main(argv: list[str] | None = None) -> int:
    """Open the session, print READY, sleep until SIGTERM/SIGINT; returns the exit status."""
    parser = argparse.ArgumentParser()
    parser.add_argument("user")
    parser.add_argument("rhost")
    parser.add_argument("--service", default="login")
    parser.add_argument("--ruser", default="")
    args = parser.parse_args(argv)

    pam = ctypes.CDLL(ctypes.util.find_library("pam") or "libpam.so.0")
    pam.pam_start.argtypes = [
        ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(PamConv), ctypes.POINTER(ctypes.c_void_p)
    ]
    pam.pam_set_item.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    pam.pam_open_session.argtypes = [ctypes.c_void_p, ctypes.c_int]
    pam.pam_close_session.argtypes = [ctypes.c_void_p, ctypes.c_int]
    pam.pam_end.argtypes = [ctypes.c_void_p, ctypes.c_int]
    pam.pam_strerror.argtypes = [ctypes.c_void_p, ctypes.c_int]
    pam.pam_strerror.restype = ctypes.c_char_p

    conv = PamConv(_CONV, None)
    handle = ctypes.c_void_p()
    rc = pam.pam_start(args.service.encode(), args.user.encode(), ctypes.byref(conv),
                       ctypes.byref(handle))
    if rc != PAM_SUCCESS:
        print(f"pam_start: {rc}", file=sys.stderr)
        return 1
    rhost = ctypes.create_string_buffer(args.rhost.encode())
    rc = pam.pam_set_item(handle, PAM_RHOST, ctypes.cast(rhost, ctypes.c_void_p))
    if rc == PAM_SUCCESS and args.ruser:
        ruser = ctypes.create_string_buffer(args.ruser.encode())
        rc = pam.pam_set_item(handle, PAM_RUSER, ctypes.cast(ruser, ctypes.c_void_p))
    if rc == PAM_SUCCESS:
        rc = pam.pam_open_session(handle, 0)
    if rc != PAM_SUCCESS:
        print(f"pam: {pam.pam_strerror(handle, rc)!r}", file=sys.stderr)
        pam.pam_end(handle, rc)
        return 1

    stop = False

    def _stop(_signo: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print("READY", flush=True)
    while not stop:
        time.sleep(0.2)
    pam.pam_close_session(handle, 0)
    pam.pam_end(handle, PAM_SUCCESS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
