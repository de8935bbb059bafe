"""The launcher's bad inputs: named before any process starts (no scheduler, no ssh)."""
import pytest

from gluon_cifar.commands.launch import main
from gluon_cifar.errors import ConfigError

COMMAND = ["--", "python", "scripts/train.py", "--kvstore", "dist_sync"]


@pytest.mark.parametrize("hosts,message", [
    ("node1:2222\nnode2\n", r"'node1:2222' is not a host name: .* --ssh 'ssh -p 2222'"),
    ("node1\nnode2:2222\n", r"'node2:2222' is not a host name"),  # a later host too
    ("node1 node2\n", r"'node1 node2' is not a host name: write the host alone, one per line"),
    ("no-such-host.invalid\n", r"the first host 'no-such-host.invalid' of the host file \(where the scheduler "
                               r"runs\) cannot be resolved"),
])
def test_a_host_file_that_cannot_work_is_named(hosts, message, tmp_path):
    hostfile = tmp_path / "hosts"
    hostfile.write_text(hosts)
    with pytest.raises(ConfigError, match=message):
        main(["-n", "2", "--hostfile", str(hostfile), *COMMAND])


def test_ipv6_addresses_are_host_names(tmp_path):
    from gluon_cifar.distributed.launcher import read_hostfile

    hostfile = tmp_path / "hosts"
    hostfile.write_text("::1\nfe80::1 # a comment\n")
    assert read_hostfile(str(hostfile)) == ["::1", "fe80::1"]


@pytest.mark.parametrize("flags,message", [
    (["--port", "0"], r"--port must be a TCP port in 1..65535, got 0"),
    (["--port", "70000"], r"--port must be a TCP port in 1..65535, got 70000"),
    (["--grace", "-1"], r"--grace must be a number of seconds >= 0, got -1.0"),
    (["--grace", "inf"], r"--grace must be a number of seconds >= 0, got inf"),
    (["--threads-per-worker", "0"], r"--threads-per-worker must be at least 1, got 0"),
    (["--ssh", " "], r"--ssh must name a remote shell command"),
    (["-s", "0"], r"need at least one worker and one server, got -n 2 -s 0"),
])
def test_launcher_flags_are_checked_like_the_training_flags(flags, message):
    with pytest.raises(ConfigError, match=message):
        main(["-n", "2", *flags, *COMMAND])


def test_a_worker_command_that_does_not_exist_is_named_before_any_process_starts(monkeypatch):
    """`launch -n 1 -s 1 -- /nonexistent/cmd` gave a traceback and left its scheduler and server running."""
    from gluon_cifar.distributed import launcher

    started = []
    monkeypatch.setattr(launcher, "_start", lambda *args: started.append(args))
    with pytest.raises(ConfigError, match=r"the worker command '/nonexistent/cmd' is not an executable file nor on "
                                          r"PATH: check what follows --"):
        main(["-n", "1", "-s", "1", "--", "/nonexistent/cmd"])
    assert started == []


def test_a_process_that_cannot_start_stops_those_already_started(monkeypatch):
    """Whatever fails while the job starts (here the worker: permission denied), the scheduler and server
    already running are stopped, not left with no parent."""
    from gluon_cifar.distributed import launcher

    real_start, started = launcher._start, []

    def start(name, command, *args):
        if name.startswith("worker"):
            raise PermissionError(13, "Permission denied", command[0])
        started.append(real_start(name, ["sleep", "600"], *args))  # stand-ins for the scheduler and server
        return started[-1]

    monkeypatch.setattr(launcher, "_start", start)
    with pytest.raises(PermissionError):
        launcher.launch(["python", "-c", "pass"], workers=1, servers=1, options=launcher.LaunchOptions(grace=5))
    assert [p.name for p in started] == ["scheduler", "server 0"]
    assert all(p.popen.poll() is not None for p in started)  # stopped, and reaped
