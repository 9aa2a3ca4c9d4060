"""CPU and memory readings of process trees, for the bench (psutil).

Owns: summing user + system CPU (including reaped children) and RSS over a process and its
descendants, and finding the local redis-server. Must not: start, stop or signal anything.
"""

from __future__ import annotations

import resource
from collections.abc import Iterable

import psutil
import redis


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_s(pids: Iterable[int]) -> float:
    """User + system CPU seconds of each process, its descendants and its reaped children."""
    total = 0.0
    for pid in pids:
        for proc in tree(pid):
            try:
                t = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system + t.children_user + t.children_system
    return total


def rss_mb(pid: int) -> float:
    """Resident memory of a process tree, MB."""
    total = 0
    for proc in tree(pid):
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 1e6


def redis_server_pid(redis_url: str) -> int | None:
    """The redis-server serving redis_url's port, if it runs on this machine."""
    port = str(redis.Redis.from_url(redis_url).connection_pool.connection_kwargs.get("port", 6379))
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        if (proc.info.get("name") or "").startswith("redis-server") and f":{port}" in cmd:
            return proc.pid
    return None


def children_cpu_s() -> float:
    """CPU seconds of this process's reaped children (subprocess.run and friends)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime
