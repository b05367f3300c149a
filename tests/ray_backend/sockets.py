"""What a process tree listens on, read from /proc (Linux): for the loopback checks."""

from __future__ import annotations

import os
from pathlib import Path


def _ancestry() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def _descendants(root: int) -> set[int]:
    parents = _ancestry()
    family = {root}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in family and pid not in family:
                family.add(pid)
                grew = True
    return family


def _socket_inodes(pids: set[int]) -> dict[str, int]:
    inodes: dict[str, int] = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes[target[8:-1]] = pid
    return inodes


LOOPBACK_V4 = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it (little-endian hex)
LOOPBACK_V6 = ("00000000000000000000000001000000", "0000000000000000FFFF00000100007F")


def listeners(owners: dict[str, int]) -> list[tuple[str, str, int]]:
    """(file, local address, pid) of every listening TCP or bound UDP socket in ``owners``."""
    found = []
    for name in ("tcp", "tcp6", "udp", "udp6"):
        lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            listening = state == "0A" if name.startswith("tcp") else not local.endswith(":0000")
            if listening and inode in owners:
                found.append((name, local, owners[inode]))
    return found


def assert_loopback_only(root: int | None = None) -> None:
    """Assert ``root``'s process tree (default: this process) listens on loopback only.

    There must be at least three listeners (the GCS, a raylet, the driver), so that an
    empty reading cannot pass.
    """
    found = listeners(_socket_inodes(_descendants(os.getpid() if root is None else root)))
    assert len(found) >= 3, found
    for kind, local, pid in found:
        host = local.split(":")[0]
        assert host == LOOPBACK_V4 or host in LOOPBACK_V6, (kind, local, pid)
