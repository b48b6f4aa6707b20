"""Building the wheels of every distribution in this checkout and reading their metadata."""

from __future__ import annotations

import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from venvs import REPO, run

#: The folders under plugins/ that hold a distribution: a new plugin is covered by itself.
PLUGIN_FOLDERS = sorted(path.parent.name for path in (REPO / "plugins").glob("*/pyproject.toml"))


@dataclass(frozen=True)
class Wheel:
    """A built wheel and what its metadata says."""

    path: Path
    name: str
    version: str
    metadata: str
    entry_points: dict[str, list[str]]  # group -> names
    licenses: dict[str, str]  # file name under .dist-info/licenses -> text
    requires: list[str]  # Requires-Dist lines
    sources: dict[str, str]  # path of each .py file in the wheel -> its text


def read_wheel(path: Path) -> Wheel:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        info = next(name.split("/")[0] for name in names if ".dist-info/" in name)
        metadata = archive.read(f"{info}/METADATA").decode()
        entry_points: dict[str, list[str]] = {}
        if f"{info}/entry_points.txt" in names:
            group = ""
            for line in archive.read(f"{info}/entry_points.txt").decode().splitlines():
                if line.startswith("["):
                    group = line.strip("[] ")
                elif "=" in line:
                    entry_points.setdefault(group, []).append(line.split("=")[0].strip())
        prefix = f"{info}/licenses/"
        licenses = {
            name.removeprefix(prefix): archive.read(name).decode()
            for name in names
            if name.startswith(prefix)
        }
        sources = {name: archive.read(name).decode() for name in names if name.endswith(".py")}
    headers = [
        line.split(": ", 1) for line in metadata.split("\n\n")[0].splitlines() if ": " in line
    ]
    field = dict(headers)
    requires = [value for key, value in headers if key == "Requires-Dist"]
    return Wheel(
        path, field["Name"], field["Version"], metadata, entry_points, licenses, requires, sources
    )


def build_wheels(out: Path) -> dict[str, Wheel]:
    """Build kitecore and every plugin into ``out``: ``"kitecore"`` / plugin folder -> wheel."""
    sources = {"kitecore": REPO, **{name: REPO / "plugins" / name for name in PLUGIN_FOLDERS}}
    built: dict[str, Wheel] = {}
    for key, source in sources.items():
        before = set(out.iterdir())
        run(
            [
                sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                "--no-build-isolation", "--wheel-dir", str(out), str(source),
            ],
            out,
        )  # fmt: skip
        (path,) = set(out.iterdir()) - before
        built[key] = read_wheel(path)
    return built
