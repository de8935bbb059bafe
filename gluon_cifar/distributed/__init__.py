"""Several processes or machines: the kvstore and this process's rank (cluster.py), and the
launcher of scheduler, servers and workers (launcher.py).
Imports: MXNet, runtime, config, errors.
"""
