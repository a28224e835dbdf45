"""What each import of the exporter costs: wall time and resident memory, each module imported
alone in a fresh interpreter (median of ``--repeats``), then the exporter's whole import.

    python3 -m bench.imports            # the table written in bench/README.md ("Import costs")
    python3 -m bench.imports --repeats 3 yaml ssl

Run from the repository root. Times include the module's own imports that are not loaded yet;
RSS is VmRSS after minus before, so shared libraries mapped by the module count.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# (module, which flags need it)
MODULES = (
    ("prometheus_client", "always (metric families, rendering, process metrics)"),
    ("ssl", "TLS (tls_server_config); also imported by prometheus_client"),
    ("hashlib", "basic auth; also imported by prometheus_client (OpenSSL's libcrypto)"),
    ("http.server", "always (the request parser)"),
    ("login_exporter.sdlogin", "always (pre-parsed cffi declarations)"),
    ("pycparser", "none since issue 20 (parsing cdefs at start-up)"),
    ("login_exporter.bus", "--collector.dbus (default on): jeepney"),
    ("jeepney", "--collector.dbus"),
    ("yaml", "--web.config.file"),
    ("bcrypt", "basic_auth_users"),
    ("login_exporter.cli", "the exporter's whole import"),
)

PROBE = """
import sys, time
def rss():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
before = rss()
start = time.perf_counter()
__import__(sys.argv[1])
elapsed = time.perf_counter() - start
print(elapsed * 1e3, (rss() - before) / 1024, rss() / 1024)
"""


def measure(module: str, repeats: int) -> tuple[float, float, float]:
    """Return the median (ms, MB added, MB total RSS) of importing ``module`` alone.

    Raises subprocess.CalledProcessError when the import fails.
    """
    runs = []
    for _ in range(repeats):
        done = subprocess.run(
            [sys.executable, "-c", PROBE, module], cwd=REPO, capture_output=True, text=True,
            timeout=60, check=True,
        )  # fmt: skip
        runs.append(tuple(map(float, done.stdout.split())))
    return tuple(statistics.median(run[i] for run in runs) for i in range(3))  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    """Print the table. Returns 0."""
    parser = argparse.ArgumentParser(prog="python3 -m bench.imports")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("modules", nargs="*", help="modules to measure (default: the list)")
    args = parser.parse_args(argv)
    wanted = [(m, "") for m in args.modules] or list(MODULES)
    print("| import | needed by | time (ms) | RSS added (MB) |")
    print("| --- | --- | --- | --- |")
    for module, needed in wanted:
        ms, added, _ = measure(module, args.repeats)
        print(f"| `{module}` | {needed} | {ms:.1f} | {added:.1f} |")
    _, _, bare = measure("os", args.repeats)
    print(f"\nA bare interpreter (`python3 -c 'import os'` after site): {bare:.1f} MB resident.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
