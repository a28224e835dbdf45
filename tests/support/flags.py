"""The flags the exporter's --help lists, read from the help text itself (not from argparse's
internals), for tests that check every flag is shown somewhere."""

from __future__ import annotations

import re

from login_exporter.cli import NOT_SERVING as NOT_SERVING_DESTS
from login_exporter.cli import build_parser

# Never in force while the exporter serves: --once prints and exits, --help and --version too.
NOT_SERVING = frozenset(f"--{dest}" for dest in NOT_SERVING_DESTS)


def help_flags() -> set[str]:
    """Every flag of ``login-exporter --help`` but NOT_SERVING and the --no-X forms of --X."""
    found = set(re.findall(r"(?<![\w.-])--[a-z][\w.-]*[\w]", build_parser().format_help()))
    negated = {f"--no-{flag.removeprefix('--')}" for flag in found}
    return found - negated - NOT_SERVING


def landing_flags(page: str) -> dict[str, str]:
    """flag -> value from the landing page's table of flags in force."""
    row = r"<tr><td><code>(--[^<]+)</code></td><td><code>([^<]*)</code></td></tr>"
    return dict(re.findall(row, page))
