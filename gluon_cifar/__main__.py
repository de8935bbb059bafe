"""`python -m gluon_cifar COMMAND ...`: the same as the `gluon-cifar` command."""
from gluon_cifar.commands import run

run()
