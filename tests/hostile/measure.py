"""Measurements the hostile suite reports: the server's resident memory sampled while an attack
runs, and latency percentiles."""
import pathlib
import threading
import time


def proc_status_mb(pid, field):
    """VmRSS / VmHWM of a process in MB (from /proc/<pid>/status)."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    raise KeyError(field)


class RssSampler:
    """Samples the server's VmRSS every `interval` seconds while the `with` block runs;
    `growth_mb` is the highest sample minus the reading taken on entry."""

    def __init__(self, pid, interval=0.01):
        self.pid = pid
        self.interval = interval
        self.baseline_mb = self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        try:
            value = proc_status_mb(self.pid, "VmRSS")
        except (OSError, KeyError):
            return  # the process is gone; the test reports that on its own
        self.peak_mb = max(self.peak_mb, value)

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.interval)

    def __enter__(self):
        self.baseline_mb = proc_status_mb(self.pid, "VmRSS")
        self.peak_mb = self.baseline_mb
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def growth_mb(self):
        return round(self.peak_mb - self.baseline_mb, 2)

    def figures(self, prefix="rss"):
        return {f"{prefix}_baseline_mb": round(self.baseline_mb, 2),
                f"{prefix}_peak_mb": round(self.peak_mb, 2),
                f"{prefix}_growth_mb": self.growth_mb}


def percentile(values, fraction):
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, int(round(fraction * len(ordered) + 0.4999)))
    return ordered[min(rank, len(ordered)) - 1]
