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
    """The user pressed Ctrl-C (SIGINT): exit 130, as shells expect, with what to do next; or the
    process was sent SIGTERM (`terminated`): exit 143."""

    exit_code = 130

    def __init__(self, message: str, terminated: bool = False) -> None:
        super().__init__(message)
        if terminated:
            self.exit_code = Terminated.exit_code


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, a scheduler stopping the job), raised where Ctrl-C's KeyboardInterrupt is, so
    that the same clean-up runs: a run stops after its last checkpoint, or leaves nothing behind."""

    exit_code = 143  # 128 + SIGTERM, as shells report it


class DiskFull(GluonCifarError):
    """A file could not be written for want of space (or a write cut short); the message says what and where."""
