"""What every benchmark records about where it ran (imported by the bench_*.py scripts, run from this folder)."""

from __future__ import annotations

import os
import platform


def machine() -> str:
    """The CPU model and core count, e.g. "Intel(R) Xeon(R) ..., 2 cores", for the results tables."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"
