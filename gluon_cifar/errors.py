"""User-facing errors: anything a user can fix by changing a file or a flag."""


class GluonCifarError(Exception):
    """A bad input or setting. Scripts print the message and exit with `exit_code`."""

    exit_code = 2


class LayoutError(GluonCifarError):
    """The data directory does not look like the Kaggle CIFAR-10 download."""


class ConfigError(GluonCifarError):
    """A setting is out of range or names something that does not exist."""


class DivergenceError(GluonCifarError):
    """The loss became NaN or infinite: the learning rate is too high for this run."""


class Interrupted(GluonCifarError):
    """The user pressed Ctrl-C (SIGINT): exit 130, as shells expect, with what to do next."""

    exit_code = 130
