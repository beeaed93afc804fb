"""What the figures were measured on, including how busy the machine already was."""

import os
import platform
import time
from pathlib import Path


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs since boot."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user time
    return total - idle, total


def background_load(seconds: float = 2.0) -> float:
    """The fraction of all CPUs busy over `seconds`, while the benchmark itself is idle."""
    busy_before, total_before = cpu_times()
    time.sleep(seconds)
    busy_after, total_after = cpu_times()
    elapsed = total_after - total_before
    return (busy_after - busy_before) / elapsed if elapsed else 0.0


def describe(postgres_version: str | None, load: float) -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "CPU": f"{cpu}, {os.cpu_count()} logical CPUs",
        "memory": f"{memory:.0f} GiB",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "PostgreSQL": postgres_version or "not used",
        "CPU busy just before the servers started": f"{load:.0%}",
    }
