"""Start a parameter-server job: one scheduler, S servers and N workers, and watch over them.

MXNet's distributed kvstore is ps-lite: every process learns its role and where the scheduler
listens from DMLC_* environment variables, and `import mxnet` in a process whose role is server
or scheduler runs that role until the workers finish. This module only starts those processes,
prefixes their output with their role, and makes sure that one failure ends the whole job
within a bounded time (a worker whose peer died would otherwise wait for it forever).
"""
from __future__ import annotations

import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO

from ..errors import ConfigError
from ..runtime import THREAD_VARIABLES, physical_cores

log = logging.getLogger(__name__)

_RUN_ROLE = [sys.executable, "-c", "import mxnet"]  # a server or the scheduler: importing runs it
# What a remote process needs of the launching shell's environment ("the same paths on every
# host"): ps-lite's and the thread settings, and what finds the interpreter and the package.
_FORWARDED = ("DMLC_", "OMP_", "MXNET_", "KMP_", "DNNL_", "GLUON_CIFAR_")
_FORWARDED_NAMES = ("PATH", "PYTHONPATH", "VIRTUAL_ENV", "LD_LIBRARY_PATH")
SSH_FAILED = 255  # ssh's own exit code: the host did not answer, refused us, or the connection dropped


@dataclass(frozen=True)
class LaunchOptions:
    hosts: list[str] | None = None  # None: every process on this machine
    port: int | None = None  # the scheduler's; None: a free one
    grace: float = 10.0  # seconds between SIGTERM and SIGKILL when stopping processes
    threads_per_worker: int | None = None  # None: cores / workers on one machine, MXNet's own on hosts
    ssh: str = "ssh"  # the remote shell command, e.g. "ssh -i key -p 2222"

    def validate(self) -> "LaunchOptions":
        """Named errors for values that cannot work, before anything starts."""
        if self.port is not None and not 1 <= self.port <= 65535:
            raise ConfigError(f"--port must be a TCP port in 1..65535, got {self.port}")
        if not 0 <= self.grace < float("inf"):
            raise ConfigError(f"--grace must be a number of seconds >= 0, got {self.grace}")
        if self.threads_per_worker is not None and self.threads_per_worker < 1:
            raise ConfigError(f"--threads-per-worker must be at least 1, got {self.threads_per_worker}")
        if not self.ssh.strip():
            raise ConfigError("--ssh must name a remote shell command, e.g. 'ssh' or 'ssh -p 2222'")
        return self


@dataclass
class Process:
    name: str  # "scheduler", "server 0", "worker 1", ...
    popen: subprocess.Popen
    pump: threading.Thread = field(repr=False)

    @property
    def is_worker(self) -> bool:
        return self.name.startswith("worker")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def read_hostfile(path: str) -> list[str]:
    """One host per line (blank lines and # comments ignored)."""
    try:
        with open(path, encoding="utf-8") as f:
            hosts = [line.split("#")[0].strip() for line in f]
    except OSError as exc:
        raise ConfigError(f"cannot read host file {path} ({exc.strerror})") from None
    hosts = [h for h in hosts if h]
    if not hosts:
        raise ConfigError(f"host file {path} lists no hosts: write one host name per line")
    for host in hosts:
        if host.count(":") == 1 or any(c.isspace() for c in host):  # (an IPv6 address has several colons)
            raise ConfigError(f"host file {path}: {host!r} is not a host name: write the host alone, one per line; "
                              "an ssh port goes into the remote shell, e.g. --ssh 'ssh -p 2222'")
    return hosts


def scheduler_address(host: str) -> str:
    """The first host's address, which every process is told to reach the scheduler at."""
    try:
        return socket.gethostbyname(host)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise ConfigError(f"the first host {host!r} of the host file (where the scheduler runs) cannot be resolved "
                          f"({reason}): fix its name or put a reachable host first") from None


def _pump(stream: IO[str], prefix: str, out: IO[str]) -> None:
    for line in stream:
        out.write(f"[{prefix}] {line}")
        out.flush()


def _start(name: str, command: list[str], env: dict[str, str], host: str | None, options: LaunchOptions,
           out: IO[str]) -> Process:
    env = {**os.environ, **env}
    if host is not None:
        name = f"{name}@{host}"
        command = _over_ssh(command, env, host, options)
    # stdin over ssh: a pipe never written to, which the remote watchdog watches (see _over_ssh)
    popen = subprocess.Popen(command, env=env, stdin=subprocess.PIPE if host else None, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, bufsize=1,
                             start_new_session=True)  # own group: kill its children too
    pump = threading.Thread(target=_pump, args=(popen.stdout, name, out), daemon=True)
    pump.start()
    log.info("started %s (pid %d): %s", name, popen.pid, shlex.join(command))
    return Process(name, popen, pump)


def _over_ssh(command: list[str], env: dict[str, str], host: str, options: LaunchOptions) -> list[str]:
    """`command` run on `host` through ssh, in this working directory, with the forwarded variables.

    Killing a local ssh client does not stop its remote command (without a terminal nothing
    signals it), so the remote side runs the command in a session of its own and a watchdog
    that reads the connection's stdin: when the connection ends, whether the launcher stopped
    the job or died, the watchdog sends the command's process group SIGTERM, then SIGKILL after
    the grace period.
    """
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items())
                       if k.startswith(_FORWARDED) or k in _FORWARDED_NAMES)
    # fd 3: the connection's stdin, handed explicitly to the watchdog (sh gives background jobs
    # /dev/null otherwise) and closed everywhere else.
    watched = (f"exec 3<&0; setsid {shlex.join(command)} </dev/null 3<&- & child=$!; "
               f"{{ cat <&3 >/dev/null; kill -TERM -$child; sleep {options.grace:g}; kill -KILL -$child; }} "
               ">/dev/null 2>&1 & exec 3<&-; wait $child")
    remote = f"cd {shlex.quote(os.getcwd())} && exec env {exports} sh -c {shlex.quote(watched)}"
    return [*shlex.split(options.ssh), "-o", "BatchMode=yes", host, remote]


def _stop(processes: list[Process], grace: float) -> None:
    """SIGTERM every live process group, then SIGKILL whatever is left after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [p for p in processes if p.popen.poll() is None]
        for p in alive:
            try:
                os.killpg(p.popen.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while alive and time.monotonic() < deadline:
            alive = [p for p in alive if p.popen.poll() is None]
            time.sleep(0.05)
    for p in processes:
        p.pump.join(timeout=1)


def launch(command: list[str], workers: int, servers: int, options: LaunchOptions = LaunchOptions(),
           out: IO[str] = sys.stdout) -> int:
    """Run `command` as `workers` workers with `servers` servers and a scheduler; return an exit code.

    0 when every worker exits 0. When any process fails, all the others are stopped (SIGTERM, then
    SIGKILL after `grace` seconds) and the failed process's exit code is returned (128 + N if
    signal N killed it, 1 if it ended with 0 too early). Without options.hosts everything runs on
    this machine; with them, the scheduler runs on the first host and servers and workers go
    round-robin over the hosts, through ssh, each named role@host in the output.
    """
    hosts, grace = options.hosts, options.grace
    if workers < 1 or servers < 1:
        raise ConfigError(f"need at least one worker and one server, got -n {workers} -s {servers}")
    if not command:
        raise ConfigError("no worker command: put it after --, e.g. -- python scripts/train.py --kvstore dist_sync")
    root = hosts[0] if hosts else "127.0.0.1"
    env = {"DMLC_PS_ROOT_URI": scheduler_address(root) if hosts else root,
           "DMLC_PS_ROOT_PORT": str(options.port or free_port()),
           "DMLC_NUM_SERVER": str(servers), "DMLC_NUM_WORKER": str(workers)}
    threads_per_worker = options.threads_per_worker
    if threads_per_worker is None and not hosts:
        # Workers sharing one machine would each start a thread per core and thrash.
        threads_per_worker = max(1, physical_cores() // workers)
    if threads_per_worker is not None:
        env.update({variable: str(threads_per_worker) for variable in THREAD_VARIABLES})

    def host(i: int) -> str | None:
        return hosts[i % len(hosts)] if hosts else None

    if not hosts and shutil.which(command[0]) is None:  # before any process starts, none is left behind
        raise ConfigError(f"the worker command {command[0]!r} is not an executable file nor on PATH: check what "
                          "follows --, e.g. -- python scripts/train.py --kvstore dist_sync")
    roles = [("scheduler", _RUN_ROLE, "scheduler", 0)] + [(f"server {i}", _RUN_ROLE, "server", i) for i in
                                                         range(servers)]
    roles += [(f"worker {i}", command, "worker", i) for i in range(workers)]
    processes: list[Process] = []
    try:
        for name, argv, role, i in roles:
            processes.append(_start(name, argv, {**env, "DMLC_ROLE": role}, host(i), options, out))
        return _watch(processes, grace)
    except KeyboardInterrupt:
        log.error("interrupted: stopping every process")
        _stop(processes, grace)
        return 130
    except BaseException:  # a process that cannot start (or a bug): stop those started, then say why
        _stop(processes, grace)
        raise


def _watch(processes: list[Process], grace: float) -> int:
    workers = [p for p in processes if p.is_worker]
    roles_done_at = None  # when the scheduler and servers had all ended (they do once every worker said goodbye)
    while True:
        if all(w.popen.poll() == 0 for w in workers):  # the job is done, whatever a server does now
            deadline = time.monotonic() + grace  # give the scheduler and servers time to end cleanly
            while any(p.popen.poll() is None for p in processes) and time.monotonic() < deadline:
                time.sleep(0.05)
            _stop(processes, grace)
            return 0
        failed = [p for p in processes if p.popen.poll() not in (None, 0)]
        if roles_done_at is None and all(p.popen.poll() == 0 for p in processes if not p.is_worker):
            roles_done_at = time.monotonic()
        hung = roles_done_at is not None and time.monotonic() - roles_done_at > grace
        if failed or hung:
            first = failed[0] if failed else next((w for w in workers if w.popen.poll() is None), workers[0])
            why = f"exited with code {first.popen.returncode}" if failed else "outlived the scheduler"
            if failed and first.popen.returncode == SSH_FAILED and "@" in first.name:
                host = first.name.split("@", 1)[1]
                why += f" (ssh: {host} did not answer, refused the key, or the connection dropped)"
            log.error("%s %s: stopping every other process", first.name, why)
            _stop(processes, grace)
            code = first.popen.returncode if failed else 1
            return code if code > 0 else 128 - code  # killed by signal N: 128 + N, as shells do
        time.sleep(0.1)
