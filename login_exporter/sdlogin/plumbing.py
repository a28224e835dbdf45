"""The binding's plumbing for other libsystemd bindings of this package (sddaemon.py): the cffi
handle, looking a function up, encoding a name for C and raising the right OSError for a
negative return. The sd-login modules use the same functions under their private names.
"""

from __future__ import annotations

from login_exporter.sdlogin._call import _encode as encode
from login_exporter.sdlogin._call import _fail as fail
from login_exporter.sdlogin._call import _function as function
from login_exporter.sdlogin._ffi import ffi

__all__ = ["encode", "fail", "ffi", "function"]
# encode(name, what) -> bytes: raises TypeError / ValueError (NUL) before anything reaches C.
# fail(result, call, subject) -> NoReturn: OSError (InvalidArgumentError for EINVAL) naming
#   the call and its subject.
# function(name): the loaded library's function; raises OSError when libsystemd cannot be
#   loaded, UnsupportedError when it lacks the function.
