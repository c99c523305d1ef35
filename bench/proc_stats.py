"""What a process and the machine spent, from /proc (Linux): CPU per message by process, the
machine's busy share, a process's peak resident memory. Shared by the benches."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["Account", "busy_percent", "cpu_seconds", "cpu_times", "rss_peak_mb"]


def cpu_times() -> tuple[float, float, float]:
    """(busy, steal, total) jiffies of the whole machine, from /proc/stat: busy is user, nice,
    system, irq and softirq; steal is time the hypervisor gave to another guest (guest time is
    already inside user and nice)."""
    line = Path("/proc/stat").read_text().split("\n", 1)[0]
    user, nice, system, idle, iowait, irq, softirq, steal = (float(v) for v in line.split()[1:9])
    busy = user + nice + system + irq + softirq
    return busy, steal, busy + steal + idle + iowait


def busy_percent(before: tuple[float, float, float]) -> str:
    busy, steal, total = cpu_times()
    span = max(total - before[2], 1)
    return (
        f"{100 * (busy - before[0]) / span:.0f} % of {os.cpu_count()} cores"
        f" (and {100 * (steal - before[1]) / span:.0f} % stolen by the hypervisor)"
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Account:
    """CPU time spent by named processes from now on, and by everything else on the machine
    (the publisher pool, the bench's own probes, the kernel's share of no process)."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = {name: pid for name, pid in pids.items() if pid is not None}
        self.start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.machine = cpu_times()[0]

    def report(self, messages: int) -> str:
        spent = {n: cpu_seconds(pid) - self.start[n] for n, pid in self.pids.items()}
        machine = (cpu_times()[0] - self.machine) / os.sysconf("SC_CLK_TCK")
        n = os.cpu_count() or 1
        spent["publishers and the rest"] = max(machine - sum(spent.values()), 0.0)
        parts = ", ".join(f"{n} {t / messages * 1e6:.0f}" for n, t in spent.items())
        return (
            f"CPU us per message: {parts}; all {machine / messages * 1e6:.0f}"
            f" (all {n} cores at this cost: {n * messages / machine:.0f} msgs/s at most)"
        )


def rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0
