"""Every error that ends an `overopt` command with one line naming what is wrong (and no traceback). Torch-free, so
the CLI can catch them all without loading the modules that raise them."""


class ConfigError(ValueError):
    """A bad config key or value; the message names the key."""


class FitError(ValueError):
    """Input that cannot be fitted; the message says what is wrong."""


class LogError(ValueError):
    """A log that cannot be read or has no usable curve; the message names the file and the problem."""


class ReportError(ValueError):
    """A run directory whose tables cannot be reported; the message names the file and column."""


class HFWorldError(ValueError):
    """A Hugging Face world that cannot be built: the message names the config key or file."""


class SweepError(ValueError):
    """A grid file that cannot be swept: the message names the key."""


class TrackingError(ValueError):
    """A tracking backend that cannot be used: the message names the config key or package."""


class RLError(RuntimeError):
    """A non-finite loss, reward or KL; the message names the step and the quantity."""


class DAAError(RuntimeError):
    """A non-finite loss; the message names the step."""


class TrainingError(RuntimeError):
    """A non-finite loss, weight or score in pi0 or proxy training or scoring; the message names the stage, the step
    and the quantity. Nothing non-finite is cached."""
