"""Errors that the command line reports as one clear line (no traceback)."""


class TaxbenchError(Exception):
    """A problem with the user's input: a config value, a file or a name.  The message
    names the culprit (option, file and line) and how to fix it."""


class ConfigError(TaxbenchError):
    """A config option has a value that cannot work."""


class DataError(TaxbenchError):
    """A data file is missing, corrupted or does not match its checksum."""


class TrainingError(TaxbenchError):
    """Training could not produce a usable checkpoint (e.g. the loss became NaN)."""
