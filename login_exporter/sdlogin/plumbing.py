"""The binding's plumbing for the rest of this package: for other libsystemd bindings
(sddaemon.py) the cffi handle, looking a function up, encoding a name for C and raising the right
OSError for a negative return; for the command line (cli.py) choosing and loading the library;
for ffibuild.py the C declarations. The sd-login modules use the same names privately.
"""

from __future__ import annotations

from login_exporter.sdlogin._call import _encode as encode
from login_exporter.sdlogin._call import _fail as fail
from login_exporter.sdlogin._call import _function as function
from login_exporter.sdlogin._ffi import (
    CDEF,
    ENVIRONMENT,
    ExplicitLibraryError,
    ffi,
    load,
    use_library,
)

__all__ = [
    "CDEF", "ENVIRONMENT", "ExplicitLibraryError", "encode", "fail", "ffi", "function", "load",
    "use_library",
]
# encode(name, what) -> bytes: raises TypeError / ValueError (NUL) before anything reaches C.
# fail(result, call, subject) -> NoReturn: OSError (InvalidArgumentError for EINVAL) naming
#   the call and its subject.
# function(name): the loaded library's function; raises OSError when libsystemd cannot be
#   loaded, UnsupportedError when it lacks the function.
