"""Run a training command as a distributed job on MXNet's parameter server (kvstore dist_sync).

Starts a scheduler, SERVERS servers and WORKERS copies of the command, prefixes every line of
output with its process, and if any process fails stops all the others and exits non-zero.

examples:
  # 2 workers and 1 server on this machine (each worker trains on half of every epoch):
  python scripts/launch.py -n 2 -s 1 -- python scripts/train.py --kvstore dist_sync --data-dir ~/cifar-10
  # over several machines (password-less ssh, the same paths and environment on each):
  python scripts/launch.py -n 4 -s 2 --hostfile hosts.txt -- python scripts/train.py --kvstore dist_device_sync --gpus 0,1 ...
"""
from __future__ import annotations

import argparse
import logging

from ..distributed.launcher import LaunchOptions, launch, read_hostfile


def get_args_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--workers", type=int, required=True, help="number of worker processes")
    parser.add_argument("-s", "--servers", type=int, default=1, help="number of parameter servers (default: 1)")
    parser.add_argument("--hostfile", default=None, help="file with one host per line; the scheduler runs on the "
                                                         "first (default: everything on this machine)")
    parser.add_argument("--port", type=int, default=None, help="scheduler port (default: a free one)")
    parser.add_argument("--grace", type=float, default=10.0,
                        help="seconds between SIGTERM and SIGKILL when stopping processes (default: 10)")
    parser.add_argument("--threads-per-worker", type=int, default=None,
                        help="OpenMP threads per worker (default on one machine: cores / workers)")
    parser.add_argument("--ssh", default="ssh", help="remote shell command for --hostfile, e.g. 'ssh -i ~/.ssh/cluster "
                                                   "-p 2222' (default: ssh; BatchMode is always on: no prompts)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the worker command")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = get_args_parser(prog).parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    hosts = read_hostfile(args.hostfile) if args.hostfile else None
    logging.getLogger().handlers[0].setFormatter(logging.Formatter("[launch] %(asctime)s %(message)s", "%H:%M:%S"))
    options = LaunchOptions(hosts, args.port, args.grace, args.threads_per_worker, args.ssh).validate()
    return launch(command, args.workers, args.servers, options)
