"""The process tree of a run or a watch, read with psutil: the process the benchmark started and
everything it started in turn (analysis workers, Prefect's temporary server, multiprocessing's
resource tracker), each reading giving every member's memory, CPU seconds, threads and descriptors
with its role. Every process ever seen is remembered, so that what outlives the run is found (and
ended, by PID) even after the run's own process is gone."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil

# Roles besides the root's own (named by the caller: flow, watch, run).
ROLES = ("worker", "server", "tracker", "other")


def is_alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def role_of(proc: psutil.Process) -> str:
    """What a descendant is, from its command line; "gone" when it ended before it could be read."""
    try:
        cmd = " ".join(proc.cmdline())
    except psutil.Error:
        return "gone"
    if "spawn_main" in cmd:  # a spawned worker runs `from multiprocessing.spawn import spawn_main`
        return "worker"
    if "resource_tracker" in cmd:
        return "tracker"
    # The temporary server: `python -m flows.server_guard PORT` (the project's), or Prefect's own
    # `python -m uvicorn ... prefect.server.api.server:create_app`.
    if any(mark in cmd for mark in ("server_guard", "uvicorn", "prefect")):
        return "server"
    return "other"


@dataclass(frozen=True)
class Member:
    pid: int
    role: str
    rss: int
    uss: int  # 0 unless the reading was full
    cpu: float  # user + system seconds so far, its own (a reaped child's would count twice)
    threads: int
    fds: int


@dataclass
class Sample:
    t: float  # seconds since the sampler started
    members: list[Member]

    def by_role(self, role: str) -> list[Member]:
        return [m for m in self.members if m.role == role]

    def rss(self, role: str | None = None) -> int:
        return sum(m.rss for m in self.members if role is None or m.role == role)

    def uss(self, role: str | None = None) -> int:
        return sum(m.uss for m in self.members if role is None or m.role == role)


class TreeSampler:
    """Reads `root` and its descendants on each `sample()`; keeps the peak of their summed resident
    memory, each process's last CPU reading and every process seen. Not thread-safe by itself."""

    def __init__(self, root: psutil.Process, root_role: str, started: float | None = None):
        self.root, self.root_role = root, root_role
        self.started = time.monotonic() if started is None else started
        self.seen: dict[int, psutil.Process] = {root.pid: root}
        self.peak_rss = 0
        self._roles: dict[tuple[int, float], str] = {}
        self._cpu: dict[tuple[int, float], tuple[str, float]] = {}

    def follow(self) -> list[psutil.Process]:
        """The tree as it is now (empty once the root is gone), every member remembered."""
        try:
            members = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return []
        for member in members:
            self.seen.setdefault(member.pid, member)
        return members

    def role(self, proc: psutil.Process) -> str:
        if proc.pid == self.root.pid:
            return self.root_role
        try:
            key = (proc.pid, proc.create_time())
        except psutil.Error:
            return "gone"
        if key in self._roles:
            return self._roles[key]
        role = role_of(proc)
        # Between its fork and its exec a child shows its parent's command line: only a role that
        # its command line gave is final.
        if role not in ("other", "gone"):
            self._roles[key] = role
        return role

    def sample(self, full: bool = False) -> Sample | None:
        """`full`: USS too (it reads every mapping of each process: tens of ms, so not every time)."""
        procs = self.follow()
        if not procs:
            return None
        members = []
        for proc in procs:
            try:
                with proc.oneshot():
                    memory = proc.memory_full_info() if full else proc.memory_info()
                    times = proc.cpu_times()
                    member = Member(
                        proc.pid,
                        self.role(proc),
                        memory.rss,
                        getattr(memory, "uss", 0),
                        times.user + times.system,
                        proc.num_threads(),
                        proc.num_fds(),
                    )
                    self._cpu[(proc.pid, proc.create_time())] = (member.role, member.cpu)
            except psutil.Error:  # ended between the listing and the reading
                continue
            members.append(member)
        sample = Sample(round(time.monotonic() - self.started, 2), members)
        self.peak_rss = max(self.peak_rss, sample.rss())
        return sample

    def cpu_by_role(self) -> dict[str, float]:
        """CPU seconds by role, each process as last read (ended processes included)."""
        out: dict[str, float] = {}
        for role, seconds in self._cpu.values():
            out[role] = round(out.get(role, 0.0) + seconds, 1)
        return out

    def alive(self) -> list[psutil.Process]:
        return [p for p in self.seen.values() if is_alive(p)]

    def describe(self, proc: psutil.Process) -> str:
        try:
            command = " ".join(proc.cmdline())[:100]
        except psutil.Error:
            command = "?"
        return f"{self.role(proc)} {proc.pid}: {command}"

    def end_outlivers(self, grace: float) -> tuple[list[str], float]:
        """Waits up to `grace` seconds for every process seen to end; the ones still alive then are
        described and killed by PID. Returns them, and how many seconds the last of the others
        took to end."""
        begun = time.monotonic()
        waiting = self.alive()
        last_gone = 0.0
        while True:
            now = time.monotonic() - begun
            still = [p for p in waiting if is_alive(p)]
            if len(still) < len(waiting):
                last_gone = now
            waiting = still
            if not waiting or now >= grace:
                break
            time.sleep(0.25)
        left = [self.describe(p) for p in waiting]
        for proc in waiting:
            try:
                proc.kill()
            except psutil.Error:
                continue
        return left, round(last_gone, 1)
