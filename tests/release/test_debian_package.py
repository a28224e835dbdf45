"""The Debian package as built by dpkg-buildpackage: its contents, relations and lintian's word."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from login_exporter import __version__
from tests.release.builds import DEBIAN_ENV, REPO, run, timed

# Debian's own packages the program imports or dlopens (debian/control says why each).
RUNTIME_DEPENDS = (
    "libsystemd0", "python3-bcrypt", "python3-cffi", "python3-prometheus-client",
    "python3-yaml",
)


def deb_field(deb: Path, field: str) -> str:
    return run(["dpkg-deb", "--field", str(deb), field], cwd=deb.parent).stdout.strip()


def deb_files(deb: Path) -> set[str]:
    listing = run(["dpkg-deb", "--contents", str(deb)], cwd=deb.parent).stdout
    return {line.split()[-1].removeprefix(".") for line in listing.splitlines()}


def control_file(deb: Path, name: str) -> str:
    proc = subprocess.run(["dpkg-deb", "--info", str(deb), name], capture_output=True,
                          text=True, env=DEBIAN_ENV, check=False)
    return proc.stdout if proc.returncode == 0 else ""


def test_version_is_the_one_in_the_package_itself(debian_package: Path) -> None:
    changelog = (REPO / "debian/changelog").read_text().splitlines()[0]
    assert re.match(rf"login-exporter \({re.escape(__version__)}\) ", changelog), changelog
    assert deb_field(debian_package, "Version") == __version__
    assert debian_package.name == f"login-exporter_{__version__}_all.deb"


def test_program_module_unit_and_conffile_are_where_debian_puts_them(
    debian_package: Path,
) -> None:
    files = deb_files(debian_package)
    for path in (
        "/usr/bin/login-exporter",
        "/usr/lib/python3/dist-packages/login_exporter/cli.py",
        "/usr/lib/python3/dist-packages/login_exporter/sdlogin/_ffi.py",
        "/lib/systemd/system/login-exporter.service",
        "/etc/init.d/login-exporter",
        "/etc/default/login-exporter",
        "/usr/share/man/man1/login-exporter.1.gz",
        "/usr/share/doc/login-exporter/copyright",
    ):
        assert path in files, f"{path} missing from the package:\n" + "\n".join(sorted(files))
    # Nothing of a pip or venv install, and no second copy of a dependency.
    assert not [f for f in files if "/usr/local/" in f or "site-packages" in f]
    assert not [f for f in files if re.search(r"dist-packages/(prometheus_client|cffi|yaml)", f)]
    assert sorted(control_file(debian_package, "conffiles").split()) == [
        "/etc/default/login-exporter", "/etc/init.d/login-exporter"]


def test_depends_on_debians_own_python_libraries(debian_package: Path) -> None:
    depends = {d.strip().split()[0] for d in deb_field(debian_package, "Depends").split(",")}
    assert set(RUNTIME_DEPENDS) <= depends, depends
    assert "python3:any" in depends or "python3" in depends, depends


def test_program_runs_under_debians_python(debian_package: Path, tmp_path: Path) -> None:
    run(["dpkg-deb", "-x", str(debian_package), str(tmp_path)], cwd=tmp_path)
    script = (tmp_path / "usr/bin/login-exporter").read_text()
    assert script.startswith("#! /usr/bin/python3\n") or script.startswith("#!/usr/bin/python3\n")
    env = dict(DEBIAN_ENV, PYTHONPATH=str(tmp_path / "usr/lib/python3/dist-packages"))
    out = run(["/usr/bin/python3", str(tmp_path / "usr/bin/login-exporter"), "--version"],
              cwd=tmp_path, env=env).stdout
    assert out.strip() == f"login-exporter {__version__}"


def test_unit_runs_the_packaged_program_and_is_enabled_and_started(
    debian_package: Path, tmp_path: Path
) -> None:
    run(["dpkg-deb", "-x", str(debian_package), str(tmp_path)], cwd=tmp_path)
    unit = (tmp_path / "lib/systemd/system/login-exporter.service").read_text()
    shipped = (REPO / "deploy/systemd/login-exporter.service").read_text()
    assert unit == shipped.replace("/usr/local/bin/login-exporter", "/usr/bin/login-exporter")
    assert "ExecStart=/usr/bin/login-exporter $LOGIN_EXPORTER_ARGS" in unit
    assert "\nUser=login-exporter\n" in unit  # dbus-daemon drops DynamicUser connections
    sysusers = (tmp_path / "usr/lib/sysusers.d/login-exporter.conf").read_text()
    assert sysusers == (REPO / "deploy/systemd/login-exporter.sysusers").read_text()
    postinst = control_file(debian_package, "postinst")
    assert "deb-systemd-helper" in postinst and "enable" in postinst, postinst
    assert "deb-systemd-invoke" in postinst and "start" in postinst, postinst
    # The user exists before the service first starts.
    assert postinst.index("systemd-sysusers") < postinst.index("deb-systemd-invoke"), postinst
    postrm = control_file(debian_package, "postrm")
    assert "purge" in postrm and "userdel login-exporter" in postrm, postrm


def test_init_script_for_hosts_without_systemd(debian_package: Path, tmp_path: Path) -> None:
    # Where systemd is not PID 1 (elogind hosts) the init script starts the same program as the
    # same user; where it is, invoke-rc.d leaves the service to the unit.
    run(["dpkg-deb", "-x", str(debian_package), str(tmp_path)], cwd=tmp_path)
    script = (tmp_path / "etc/init.d/login-exporter").read_text()
    assert script == (REPO / "deploy/sysvinit/login-exporter.init").read_text()
    assert "DAEMON=/usr/bin/login-exporter" in script and "USER=login-exporter" in script
    assert "--chuid $USER" in script and "$LOGIN_EXPORTER_ARGS" in script
    postinst = control_file(debian_package, "postinst")
    assert "update-rc.d login-exporter defaults" in postinst, postinst
    assert "invoke-rc.d --skip-systemd-native login-exporter" in postinst, postinst
    # The user exists before the script first starts the service.
    assert postinst.index("systemd-sysusers") < postinst.index("update-rc.d"), postinst
    assert "rm -f /var/log/login-exporter.log" in control_file(debian_package, "postrm")
    # Hosts with elogind's library instead of systemd's may install it, and nothing in it asks
    # for systemd (apt would replace elogind with it: tests/e2e/test_elogind.py installs it).
    depends = deb_field(debian_package, "Depends")
    assert "libsystemd0 | libelogind0" in depends
    assert "systemd |" not in depends and "sysusers" not in depends, depends
    assert "useradd --system" in postinst, postinst


def test_lintian_reports_no_errors_or_warnings(debian_package: Path) -> None:
    changes = next(debian_package.parent.glob("login-exporter_*.changes"))
    with timed("deb: lintian"):
        proc = subprocess.run(
            ["lintian", "--pedantic", "--display-info", "--fail-on", "error,warning",
             str(changes)],
            capture_output=True, text=True, env=DEBIAN_ENV, timeout=300, check=False,
        )
    tags = [ln for ln in proc.stdout.splitlines() if re.match(r"[EW]: ", ln)]
    assert proc.returncode == 0 and not tags, proc.stdout + proc.stderr


def test_lintian_fails_a_broken_package(debian_package: Path, tmp_path: Path) -> None:
    """The lintian check can fail: a package with a traceback for a manual page is an error."""
    root = tmp_path / "root"
    run(["dpkg-deb", "-R", str(debian_package), str(root)], cwd=tmp_path)
    page = root / "usr/share/man/man1/login-exporter.1.gz"
    page.unlink()
    text = ".TH X 1\n.SH NAME\nx \\- y\n.SH DESCRIPTION\nTraceback (most recent call last):\n"
    subprocess.run(["gzip", "-9n"], input=text.encode(), stdout=page.open("wb"), check=True)
    md5 = root / "DEBIAN/md5sums"
    md5.write_text("".join(ln + "\n" for ln in md5.read_text().splitlines()
                           if not ln.endswith("login-exporter.1.gz")))
    broken = tmp_path / "broken.deb"
    run(["dpkg-deb", "--root-owner-group", "-b", str(root), str(broken)], cwd=tmp_path)
    proc = subprocess.run(["lintian", "--fail-on", "error", str(broken)], capture_output=True,
                          text=True, env=DEBIAN_ENV, timeout=300, check=False)
    assert proc.returncode != 0 and "python-traceback-in-manpage" in proc.stdout, proc.stdout
