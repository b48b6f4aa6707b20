"""Hatch environment collector: workspace member globs that may match nothing.

Hatch (1.16 to 1.18 at least) refuses an environment whose ``workspace.members`` glob matches no
folder ("No members could be derived") or matches a folder without a ``pyproject.toml``. Our
``plugins/*`` starts empty and gains plugins one at a time, so this collector replaces each glob
by the folders it matches that hold a ``pyproject.toml`` (possibly none) before hatch reads it.
Plain paths are left alone: naming a folder that is not a project stays an error.

Loaded by hatch through ``[env.collectors.custom] path = "scripts/hatch_workspace.py"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatch.env.collectors.plugin.interface import EnvironmentCollectorInterface


class WorkspaceGlobCollector(EnvironmentCollectorInterface):
    """Expands globs in every environment's ``workspace.members`` to existing projects."""

    PLUGIN_NAME = "custom"

    def finalize_config(self, config: dict[str, dict[str, Any]]) -> None:
        root = Path(self.root)
        for env in config.values():
            workspace = env.get("workspace")
            if isinstance(workspace, dict) and isinstance(workspace.get("members"), list):
                workspace["members"] = [
                    found for member in workspace["members"] for found in _expand(root, member)
                ]


def _expand(root: Path, member: Any) -> list[Any]:
    path = member.get("path") if isinstance(member, dict) else member
    if not isinstance(path, str) or not any(char in path for char in "*?["):
        return [member]
    projects = sorted(found.parent for found in root.glob(f"{path}/pyproject.toml"))
    paths = [project.relative_to(root).as_posix() for project in projects]
    if isinstance(member, dict):
        return [{**member, "path": found} for found in paths]
    return paths
