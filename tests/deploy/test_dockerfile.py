"""Dockerfile: hadolint (no Docker engine here, so no build) plus what the issue asks of it."""

from __future__ import annotations

import fnmatch
import json
import re
import sys
from pathlib import Path

import bcrypt
import pytest

from tests.deploy.tools import REPO, describe, find_tool, run
from tests.support.exporter import running_exporter
from tests.support.logind_state import LogindState

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def hadolint(path: Path) -> tuple[int, str]:
    proc = run([find_tool("hadolint"), "--no-color", "--failure-threshold", "style", str(path)])
    return proc.returncode, describe(proc)


def test_hadolint_reports_nothing() -> None:
    status, out = hadolint(DOCKERFILE)
    assert status == 0 and "DL" not in out and "SC" not in out, out


def test_hadolint_fails_a_careless_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get update && apt-get install curl\nRUN pip install x\n")
    status, out = hadolint(bad)
    assert status != 0 and "DL3006" in out, out


def test_final_stage_is_non_root_with_healthcheck_and_port() -> None:
    steps = instructions()
    froms = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    assert len(froms) >= 2, "not a multi-stage build"
    final = steps[froms[-1] :]
    users = [args for word, args in final if word == "USER"]
    assert users, "no USER in the final stage"
    assert re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", users[-1]), "USER must be numeric non-root"
    health = [args for word, args in final if word == "HEALTHCHECK"]
    assert len(health) == 1 and "/-/healthy" in health[0] and "python" in health[0]
    assert not re.search(r"\b(curl|wget)\b", health[0])
    assert ("EXPOSE", "9844") in final
    assert any(w == "COPY" and a.startswith("--from=builder") for w, a in final)
    assert any(w == "RUN" and "libsystemd.so.0" in a for w, a in final)


def test_documented_docker_run_mounts_run_systemd_read_only() -> None:
    text = DOCKERFILE.read_text()
    assert "-v /run/systemd:/run/systemd:ro" in text
    assert "--net=host" in text


def test_dockerignore_keeps_exactly_what_the_build_copies() -> None:
    patterns = [
        ln.strip() for ln in DOCKERIGNORE.read_text().splitlines() if ln.strip() and ln[0] != "#"
    ]

    def ignored(rel: str) -> bool:
        verdict = False
        for pattern in patterns:
            negate = pattern.startswith("!")
            pat = pattern.lstrip("!").rstrip("/")
            glob = pat.replace("**/", "*")
            if fnmatch.fnmatch(rel, glob) or rel.startswith(pat + "/"):
                verdict = not negate
        return verdict

    copied = []
    for word, args in instructions():
        if word == "COPY" and not args.startswith("--from"):
            copied.extend(args.split()[:-1])
    assert copied, "the Dockerfile copies nothing from the context"
    for source in copied:
        assert (REPO / source).exists(), source
        assert not ignored(source), f"{source} is copied but excluded by .dockerignore"
    pycache = "login_exporter/__pycache__/a.pyc"
    noise_paths = (".git", "tests/conftest.py", "bench", "grafana", pycache)
    for noise in noise_paths:
        assert ignored(noise), f"{noise} would be sent to the build"


def healthcheck_command() -> list[str]:
    """The final stage's HEALTHCHECK command (exec form), as the container runs it."""
    (args,) = [args for word, args in instructions() if word == "HEALTHCHECK"]
    _, _, exec_form = args.partition(" CMD ")
    command: list[str] = json.loads(exec_form)
    return command


@pytest.mark.parametrize(("protect_health", "healthy"), [(False, True), (True, False)])
def test_healthcheck_passes_under_basic_auth_unless_health_is_protected(
    real_252: LogindState, tmp_path: Path, protect_health: bool, healthy: bool
) -> None:
    # The HEALTHCHECK, run as it is in the image (only the port differs), against the real
    # exporter with a web config holding basic_auth_users: it sends no credentials.
    command = healthcheck_command()
    assert command[:2] == ["python3", "-c"] and "127.0.0.1:9844/-/healthy" in command[2]
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()
    config = tmp_path / "web.yml"
    config.write_text(
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
        + ("basic_auth_health: true\n" if protect_health else "")
    )
    with running_exporter(f"--web.config.file={config}") as exporter:
        assert exporter.get("/metrics").status_code == 401
        check = command[2].replace("127.0.0.1:9844", f"127.0.0.1:{exporter.port}")
        proc = run([sys.executable, "-c", check], timeout=10)
    assert (proc.returncode == 0) is healthy, describe(proc)
