"""The launcher's several-machines path for real: each "host" is a network namespace made by this
test, with its own address on a private bridge and an sshd of its own that accepts one throwaway
key; scripts/launch.py --hostfile reaches them over ssh. Traffic stays inside namespaces the test
made, on this machine. Needs root, `ip` and sshd (Debian's openssh-server; .ci/run installs it).
"""
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import pandas as pd
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
LAUNCH = [sys.executable, os.path.join(ROOT, "scripts", "launch.py")]
SMALL = ["--model", "cifar_resnet20_v1", "--batch-size", "64", "--lr", "0.1", "--lr-period", "2", "--lr-decay",
         "0.5", "--no-progress", "--precision", "float32"]


@dataclass
class Hosts:
    addresses: list  # one per namespace, in hostfile order
    namespaces: list
    ssh: str  # the ssh command the launcher is given (--ssh)
    hostfile: str
    start_sshd: object  # start_sshd(i): (re)start host i's sshd


def _ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _wait_for_port(address, port=22, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=1):
            return
        time.sleep(0.1)
    raise AssertionError(f"sshd on {address}:{port} did not start")


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("making network namespaces needs root (CI runs as root)")
    assert os.path.exists(SSHD), f"{SSHD} is missing: apt install openssh-server (.ci/run does)"
    tag = f"gc{os.getpid() % 100000}"  # names unique to this run (interface names: 15 characters at most)
    subnet = f"10.{200 + os.getpid() % 50}.{os.getpid() % 250}"
    work = tmp_path_factory.mktemp("hosts")
    key = work / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", work / "host_key"], check=True)
    (work / "authorized_keys").write_text((work / "key.pub").read_text())
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
    bridge, namespaces, addresses, daemons = f"{tag}br", [f"{tag}h{i}" for i in range(2)], [], {}

    def start_sshd(i):
        config = work / f"sshd-{i}.conf"
        config.write_text("\n".join([
            f"ListenAddress {addresses[i]}", "Port 22", f"HostKey {work / 'host_key'}",
            f"AuthorizedKeysFile {work / 'authorized_keys'}", "PubkeyAuthentication yes",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password",
            "UsePAM no", "StrictModes no", f"PidFile {work / f'sshd-{i}.pid'}", ""]))
        daemons[i] = subprocess.Popen(["ip", "netns", "exec", namespaces[i], SSHD, "-D", "-e", "-f", config],
                                      stdout=subprocess.DEVNULL, stderr=open(work / f"sshd-{i}.log", "a"))
        _wait_for_port(addresses[i])

    try:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("addr", "add", f"{subnet}.1/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for i, namespace in enumerate(namespaces):
            addresses.append(f"{subnet}.{i + 2}")
            _ip("netns", "add", namespace)
            _ip("link", "add", f"{tag}v{i}", "type", "veth", "peer", "name", "eth0", "netns", namespace)
            _ip("link", "set", f"{tag}v{i}", "master", bridge, "up")
            _ip("-n", namespace, "addr", "add", f"{addresses[i]}/24", "dev", "eth0")
            _ip("-n", namespace, "link", "set", "eth0", "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
            start_sshd(i)
        hostfile = work / "hosts.txt"
        hostfile.write_text("# the test's namespaces\n" + "\n".join(addresses) + "\n")
        ssh = (f"ssh -i {key} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
               "-o ConnectTimeout=5")
        yield Hosts(addresses, namespaces, ssh, str(hostfile), start_sshd)
    finally:
        for namespace in namespaces:  # everything started in a namespace dies with it
            for pid in _pids(namespace):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)


def _pids(namespace):
    found = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True).stdout
    return [int(pid) for pid in found.split()]


def _launch_command(hosts, *train_args, workers=2, servers=2):
    # "python" as a user types it: the launcher must pass PATH on, or the hosts' python would run
    return [*LAUNCH, "-n", str(workers), "-s", str(servers), "--hostfile", hosts.hostfile, "--ssh", hosts.ssh,
            "--grace", "5", "--threads-per-worker", "1", "--", "python", "scripts/train.py", "--kvstore", "dist_sync",
            *map(str, train_args)]


def _env():
    return {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}


def test_a_job_over_ssh_trains_like_one_process(hosts, real_layout, tmp_path):
    run = tmp_path / "dist"
    result = subprocess.run(_launch_command(hosts, "--data-dir", real_layout, *SMALL, "--epochs", "2",
                                            "--cache-dir", tmp_path / "cache", "--out", run),
                            capture_output=True, text=True, timeout=900, cwd=ROOT, env=_env())
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    output = result.stdout + result.stderr
    for role, host in [("scheduler", 0), ("server 0", 0), ("server 1", 1), ("worker 0", 0), ("worker 1", 1)]:
        assert f"started {role}@{hosts.addresses[host]} " in output, f"{role} was not started on host {host}"
    for role, host in [("worker 0", 0), ("worker 1", 1)]:  # output prefixed by role and host
        assert f"\n[{role}@{hosts.addresses[host]}] " in output
    # (the scheduler's address exists only inside host 0's namespace: the workers reached it there)
    digests = re.findall(r"worker (\d) of 2: trained weights digest (\w+)", result.stdout)
    assert sorted(rank for rank, _ in digests) == ["0", "1"] and digests[0][1] == digests[1][1]
    metrics = pd.read_csv(run / "metrics.csv")
    assert len(metrics) == 2 and metrics["lr"].tolist() == pytest.approx([0.1, 0.1])

    single = subprocess.run([sys.executable, "scripts/train.py", "--data-dir", real_layout, *SMALL, "--epochs", "2",
                             "--cache-dir", tmp_path / "cache", "--out", tmp_path / "single"],
                            capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert single.returncode == 0, single.stderr
    reference = pd.read_csv(tmp_path / "single" / "metrics.csv")
    assert abs(metrics["train_acc"].iloc[-1] - reference["train_acc"].iloc[-1]) < 0.1
    for namespace in hosts.namespaces:  # nothing of the job is left running on any host
        _assert_job_gone(namespace, seconds=60)


def _assert_job_gone(namespace, seconds):
    deadline = time.monotonic() + seconds
    while True:
        left = {pid: _command(pid) for pid in _pids(namespace)}
        left = {pid: command for pid, command in left.items() if not command.startswith((SSHD, "sshd"))}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, f"left running in {namespace}: {left}"


def _command(pid):
    with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode()
    return ""


def test_a_host_that_dies_mid_epoch_ends_the_job_named_and_resume_finishes_it(hosts, real_layout, tmp_path):
    run = tmp_path / "dist"
    args = ["--data-dir", real_layout, *SMALL, "--epochs", "2", "--cache-dir", tmp_path / "cache"]
    job = subprocess.Popen(_launch_command(hosts, *args, "--out", run), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=_env())
    deadline = time.monotonic() + 600
    while not (run / "checkpoint-last.zip").exists():  # epoch 1 done: now kill host 1 mid-epoch 2
        assert job.poll() is None and time.monotonic() < deadline, job.communicate()[0][-4000:]
        time.sleep(0.2)
    time.sleep(2)
    for pid in _pids(hosts.namespaces[1]):  # the host dies: its sshd, sessions, server and worker
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    output, _ = job.communicate(timeout=300)  # (a hang, not a slow host: the watchdog ends it within its grace)
    assert job.returncode != 0
    assert re.search(rf"(server|worker) 1@{re.escape(hosts.addresses[1])} .*: stopping every other process", output), \
        output[-3000:]
    _assert_job_gone(hosts.namespaces[0], seconds=60)  # the watchdog's SIGTERM, SIGKILL after the grace

    hosts.start_sshd(1)  # the host is back
    resumed = subprocess.run(_launch_command(hosts, "--resume", run), capture_output=True, text=True,
                             timeout=900, cwd=ROOT, env=_env())
    assert resumed.returncode == 0, resumed.stdout[-4000:]
    assert pd.read_csv(run / "metrics.csv")["epoch"].tolist() == [1, 2]


def test_a_host_that_does_not_answer_ssh_is_named(hosts, tmp_path):
    silent = hosts.addresses[0].rsplit(".", 1)[0] + ".99"  # on the test's bridge, where nobody listens
    hostfile = tmp_path / "hosts.txt"
    hostfile.write_text(f"{hosts.addresses[0]}\n{silent}\n")
    result = subprocess.run([*LAUNCH, "-n", "2", "-s", "1", "--hostfile", hostfile, "--ssh", hosts.ssh, "--grace", "2",
                             "--", "python", "-c", "import time; time.sleep(600)"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT, env=_env())  # not the 600 s
    assert result.returncode == 255
    assert f"worker 1@{silent} exited with code 255 (ssh: {silent} did not answer" in result.stderr
    _assert_job_gone(hosts.namespaces[0], seconds=60)  # worker 0 and the scheduler, stopped remotely
