"""What the machine is, and how busy other processes kept it while we measured.

On a small shared machine, the CPU time other processes take is the main source of noise, and
it hurts most at more than one thread (a parallel region waits for its slowest thread). The
share is read from /proc/stat (all CPUs' busy time) minus this process's own CPU time.
"""
import os
import platform
import time
from typing import Optional, Tuple

import torch


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


Snapshot = Tuple[float, float, float]   # (busy s, total s, this process's CPU s)


def snapshot() -> Optional[Snapshot]:
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    hz = os.sysconf("SC_CLK_TCK")
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq + steal   # steal: taken by the hypervisor
    total = busy + idle + iowait
    t = os.times()
    return busy / hz, total / hz, t.user + t.system + t.children_user + t.children_system


def others_share(a: Optional[Snapshot], b: Optional[Snapshot]) -> Optional[float]:
    """Share of the machine's CPU time (all cores) that other processes used between a and b."""
    if a is None or b is None or b[1] <= a[1]:
        return None
    others = (b[0] - a[0]) - (b[2] - a[2])
    return max(0.0, min(1.0, others / (b[1] - a[1])))


def run_meta(busy_from: Optional[Snapshot]) -> dict:
    """What a side benchmark's report says of its run: CPU, torch, threads, date, and the share
    of the CPU other processes took since busy_from."""
    return {"cpu": cpu_name(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "date": time.strftime("%Y-%m-%d"),
            "others_cpu_share": others_share(busy_from, snapshot())}
