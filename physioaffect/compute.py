"""How many CPU threads training takes, so that it shares the machine in proportion.

Two things make a PyTorch CPU job slow down far more than its share when other processes run:

- OpenMP worker threads that **spin** while they wait for work (libgomp's default active wait)
  burn the cores other processes need, and are preempted in turn. Measured on 2 cores with
  three busy processes beside it (``benchmarks/bench_training.py --mode load``), an epoch took
  5.4x its idle time with torch's defaults and 3.2x with the package's (passive wait and the
  thread count below); idle, both cost the same. The package sets ``OMP_WAIT_POLICY=PASSIVE``
  when it is imported before torch (:func:`passive_wait`); an ``OMP_WAIT_POLICY`` already in
  the environment is left as it is (override: ``OMP_WAIT_POLICY=ACTIVE``).
- **more threads than free cores**: each parallel region then waits for its slowest thread,
  which waits for a core. With ``compute.threads: 0`` (the default) a fold takes as many
  threads as cores are free of other processes' work, measured when the fold starts and again
  every epoch (:class:`ThreadPolicy`); a number > 0 is used as given (reproducible thread
  counts, e.g. to compare a serial and a Ray run bit for bit).
"""

from __future__ import annotations

import os
import sys
import time

__all__ = ["passive_wait", "ThreadPolicy", "use_threads", "free_cores"]


def passive_wait() -> bool:
    """Make OpenMP threads sleep (not spin) while they wait, if torch is not loaded yet.

    Returns
    -------
    bool
        Whether the policy is passive for the torch this process will use.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class ThreadPolicy:
    """Torch intra-op threads = cores not busy with other processes' work.

    Parameters
    ----------
    requested : int
        > 0: that many threads, always; 0: follow the free cores.
    """

    def __init__(self, requested: int = 0) -> None:
        import psutil

        self.requested = int(requested)
        self.cores = _cores()
        self._proc = psutil.Process()
        self._last: tuple | None = None
        self.threads = self.cores

    def _sample(self) -> tuple[float, float, float]:
        """(monotonic s, CPU-busy s summed over every CPU of the machine, this process's CPU s)."""
        import psutil

        t = psutil.cpu_times()
        busy = sum(t) - t.idle - getattr(t, "iowait", 0.0)
        return time.monotonic(), busy, sum(self._proc.cpu_times()[:2])

    def free(self, wait: float = 0.25) -> float:
        """Cores of this process's CPU set free of other processes' work, on average since
        the last call (the first call measures over ``wait`` s)."""
        import psutil

        if self._last is None:
            self._last = self._sample()
            time.sleep(wait)
        (t0, b0, m0), now = self._last, self._sample()
        self._last = now
        dt = now[0] - t0
        if dt <= 0:
            return float(self.cores)
        others = max(0.0, ((now[1] - b0) - (now[2] - m0)) / dt)  # cores' worth of work
        n_all = psutil.cpu_count() or self.cores
        return max(0.0, self.cores - others * self.cores / n_all)

    def adjust(self) -> int:
        """Set torch's thread count for what is free now; returns it."""
        import torch

        if self.requested > 0:
            n = self.requested
        else:
            n = max(1, min(self.cores, int(round(self.free()))))
        if n != torch.get_num_threads():
            torch.set_num_threads(n)
        self.threads = n
        return n


def free_cores(wait: float = 0.25) -> float:
    """Cores of this process's CPU set not busy with other processes' work (over ``wait`` s)."""
    policy = ThreadPolicy()
    policy.free(wait)  # primes the counters
    time.sleep(wait)
    return policy.free()


def use_threads(requested: int = 0) -> int:
    """Set the threads of a fold starting now (see :class:`ThreadPolicy`); returns the count."""
    return ThreadPolicy(requested).adjust()
