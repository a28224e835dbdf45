"""HTTP basic authentication against bcrypt hashes, cheap under a flood of wrong passwords."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
from collections.abc import Mapping
from typing import Any


class BasicAuthenticator:
    """Checks HTTP basic credentials against bcrypt hashes, paying for bcrypt once per pair.

    Results are cached under HMAC-SHA256(per-process random key, user, password), so neither
    passwords nor fast-to-invert digests stay in memory. Successes and failures are cached
    separately, so a flood of distinct wrong passwords cannot evict the right one, and at most
    ``max_concurrent_checks`` bcrypt computations run at once: a flood costs at most that many
    cores, and a request that cannot get a slot within ``wait`` seconds is refused (None).
    """

    def __init__(
        self,
        users: Mapping[str, bytes],
        *,
        max_concurrent_checks: int = 1,
        wait: float = 2.0,
        cache_size: int = 1024,
    ) -> None:
        self._users = dict(users)
        self._key = secrets.token_bytes(32)
        self._good: dict[bytes, bool] = {}
        self._bad: dict[bytes, bool] = {}
        self._cache_size = cache_size
        self._slots = threading.BoundedSemaphore(max_concurrent_checks)
        self._wait = wait
        self._dummy_hash: bytes | None = None
        self.bcrypt_checks = 0  # for tests and debugging; only written under a slot
        self.max_concurrent_seen = 0
        self._running = 0

    def check_header(self, authorization: str | None) -> bool | None:
        """Check an ``Authorization`` header value (None when absent) like ``check()``.

        Returns False for anything but well-formed ``Basic`` credentials, True or False for
        those, None when bcrypt is saturated.
        """
        if authorization is None:
            return False
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            # http.client decodes header fields as latin-1: this gets the sent bytes back.
            decoded = base64.b64decode(encoded.strip().encode("latin-1"), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = decoded.partition(b":")
        if not sep:
            return False
        try:
            user_name = user.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return self.check(user_name, password)

    def check(self, user: str, password: bytes) -> bool | None:
        """True for valid credentials, False for invalid, None when bcrypt is saturated."""
        digest = hmac.new(
            self._key, user.encode("utf-8") + b"\0" + password, hashlib.sha256
        ).digest()
        if digest in self._good:
            return True
        if digest in self._bad:
            return False
        hashed = self._users.get(user)
        bcrypt = _bcrypt()
        if not self._slots.acquire(timeout=self._wait):
            return None
        try:
            self._running += 1
            self.max_concurrent_seen = max(self.max_concurrent_seen, self._running)
            self.bcrypt_checks += 1
            if hashed is None:
                # Unknown user: spend the same bcrypt time, so timing does not reveal user names.
                bcrypt.checkpw(password, self._dummy())
                ok = False
            else:
                ok = bcrypt.checkpw(password, hashed)
        except ValueError:
            ok = False
        finally:
            self._running -= 1
            self._slots.release()
        cache = self._good if ok else self._bad
        if len(cache) >= self._cache_size:
            cache.clear()
        cache[digest] = ok
        return ok

    def _dummy(self) -> bytes:
        if self._dummy_hash is None:
            cost = 10
            for hashed in self._users.values():
                cost = int(hashed[4:6])
                break
            bcrypt = _bcrypt()
            self._dummy_hash = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(cost))
        return self._dummy_hash


def _bcrypt() -> Any:
    # Imported on first use: only basic auth needs it, and the default flags do without it
    # (0.45 MB resident, bench/README.md "Import costs").
    import bcrypt

    return bcrypt
