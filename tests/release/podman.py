"""Build and run the container image with Debian's podman, as shared/notes/container-build.md
found works on these machines (runc, explicit ulimits, the host's CA for pip during the build).

Nothing of this machine ends up in the image: the CA bundle and a pip.conf are bind-mounted into
the build's RUN steps only (``podman build -v``), never copied, and over /root, a directory
every base has: buildah leaves an empty file behind for a mount point that did not exist
(/etc/pip.conf would stay in the image), none for one that did. pip finds root's user config
(~/.config/pip/pip.conf) there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.release.builds import REPO, SIZES, BuildError, timed

IMAGE = "localhost/login-exporter:release-test"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
# crun (podman's default) refuses this machine's hybrid cgroups; podman's default ulimits need
# CAP_SYS_RESOURCE, which this machine's root lacks.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
"""


@dataclass(frozen=True)
class Layer:
    size: int
    created_by: str


@dataclass(frozen=True)
class Image:
    name: str
    base: str  # the FROM image's name
    base_kind: str  # "stand-in" (made by .ci/standin-image) or "real"
    size: int
    layers: tuple[Layer, ...]  # newest first
    base_layers: tuple[Layer, ...]

    @property
    def own_layers(self) -> tuple[Layer, ...]:
        """The layers the build adds on top of the base image."""
        assert self.layers[len(self.layers) - len(self.base_layers):] == self.base_layers
        return self.layers[: len(self.layers) - len(self.base_layers)]

    @property
    def own_size(self) -> int:
        """Bytes the build adds on top of the base image (the exporter's own layers)."""
        return sum(layer.size for layer in self.own_layers)


class Podman:
    """podman with this machine's containers.conf; every call returns the finished process."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "containers.conf"
        self.conf.write_text(CONTAINERS_CONF)
        self.build_home = workdir / "build-home"
        (self.build_home / ".config/pip").mkdir(parents=True, exist_ok=True)
        (self.build_home / ".config/pip/pip.conf").write_text("[global]\ncert = /root/ca.crt\n")
        shutil.copy(HOST_CA, self.build_home / "ca.crt")
        self.env = dict(os.environ, CONTAINERS_CONF=str(self.conf))

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise BuildError(
                f"$ podman {' '.join(args)} -> exit {proc.returncode}\n"
                f"--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}")
        return proc

    def base_image(self) -> tuple[str, str]:
        """(name, "stand-in" | "real") of the Dockerfile's base, made by .ci/standin-image."""
        with timed("image: base (.ci/standin-image; cached after the first run)"):
            proc = subprocess.run(["bash", str(REPO / ".ci/standin-image")], env=self.env,
                                  capture_output=True, text=True, timeout=900, check=False)
        if proc.returncode != 0:
            raise BuildError(f".ci/standin-image failed:\n{proc.stderr[-3000:]}")
        name, kind = proc.stdout.split()
        return name, kind

    def build(self, tag: str = IMAGE, build_args: Sequence[str] = ()) -> Image:
        """Build the repository's Dockerfile as ``tag``; return what it made."""
        base, kind = self.base_image()
        mounts = [f"-v={self.build_home}:/root:ro"]
        with timed("image: podman build"):
            self("build", "--pull=never", "--format=docker", "--layers=false", *mounts,
                 *build_args, f"--tag={tag}", str(REPO), timeout=900)
        image = Image(tag, base, kind, self.size(tag), self.history(tag), self.history(base))
        SIZES["image"] = f"{image.size / 1e6:.1f} MB ({kind} base {base})"
        SIZES["image: the exporter's own layers"] = f"{image.own_size / 1e6:.2f} MB"
        return image

    def size(self, image: str) -> int:
        return int(json.loads(self("image", "inspect", image).stdout)[0]["Size"])

    def history(self, image: str) -> tuple[Layer, ...]:
        entries = json.loads(self("history", "--no-trunc", "--format=json", image).stdout)
        return tuple(Layer(int(h["size"]), str(h["CreatedBy"])) for h in entries)
