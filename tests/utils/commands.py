"""A PATH of the system's own commands without some of them: what a machine that lacks them
(docker, podman) would have, whatever this one has installed."""

from __future__ import annotations

from pathlib import Path


def system_path_without(directory: Path, *missing: str) -> str:
    """``directory`` filled with links to every command of /usr/bin and /bin except ``missing``."""
    directory.mkdir(parents=True, exist_ok=True)
    for source in (Path("/usr/bin"), Path("/bin")):
        for command in source.iterdir():
            target = directory / command.name
            if command.name not in missing and not target.exists() and not target.is_symlink():
                target.symlink_to(command)
    return str(directory)
