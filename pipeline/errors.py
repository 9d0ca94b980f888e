"""The user-error family: the only exceptions ``stages/_cli.py`` turns into a one-line message.

A :class:`UserError` says what the user must change (a key, a file, a command to run first); it is
raised before any work is done. Everything else (a ``ValueError`` from deep in ``lzn``, a bug)
keeps its traceback. Each subclass also derives from the built-in exception a caller would expect
(``ValueError`` for a bad value, ``FileNotFoundError`` for a missing file), so code that catches
those keeps working.
"""

from __future__ import annotations

__all__ = [
    "CheckpointMismatchError", "ClusterError", "DataError", "FeatureNetworkFileError", "ModelNotTrainedError",
    "ParamsError", "ShardsMissingError", "SweepFailedError", "UsageError", "UserError",
]


class UserError(Exception):
    """Bad input or a missing prerequisite; the message names the key, file or value and what to do."""


class ParamsError(UserError, ValueError):
    """Invalid parameters; the message names the offending key."""


class UsageError(UserError, ValueError):
    """A command-line value is not accepted (an unknown ``--experiment``, a bad option value)."""


class DataError(UserError, ValueError):
    """An input file (source, shard, manifest, features, samples, report) is missing, unreadable or
    inconsistent; the message names the file and the command that writes it."""


class ShardsMissingError(UserError, FileNotFoundError):
    """Training or evaluation asked for shards that the data stage has not written."""


class ModelNotTrainedError(UserError, FileNotFoundError):
    """An evaluation asked for a model whose training stage has not run."""


class FeatureNetworkFileError(UserError, FileNotFoundError):
    """The feature network's weights file (FID, IS, precision/recall) is missing or of the wrong kind."""


class CheckpointMismatchError(UserError, ValueError):
    """A checkpoint to resume from was written by a different configuration."""


class ClusterError(UserError, RuntimeError):
    """Ray cannot be started or joined as configured."""


class SweepFailedError(UserError, RuntimeError):
    """Every trial of a sweep failed; the message says where their errors are."""
