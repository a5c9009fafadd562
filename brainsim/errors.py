"""One exception family for brainsim.

Every error raised on bad input derives from :class:`BrainsimError` and from
the matching builtin (``ValueError``, ``KeyError``, ``FileNotFoundError`` or
``RuntimeError``), so callers can catch either.
"""


class BrainsimError(Exception):
    """Base class of all brainsim errors."""


class ParameterError(BrainsimError, ValueError):
    """A parameter has a value outside what is allowed (the message names both)."""


class UnknownNameError(BrainsimError, KeyError):
    """An unknown model, parameter, population or rule name."""

    def __str__(self):  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


class StoreError(BrainsimError, ValueError):
    """A Zarr store is missing, of another schema version, or malformed."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """A store path does not exist."""


class BuildError(BrainsimError, RuntimeError):
    """An operation is not allowed in the network's current state."""


class ModelDefinitionError(BrainsimError, ValueError):
    """A neuron model description is incomplete or invalid (the message names
    the model and the field)."""


class DivergenceError(BrainsimError, FloatingPointError):
    """A simulated quantity became NaN, infinite or absurdly large (the
    message names the time, the population or region and likely causes)."""


class LinkError(BrainsimError, ConnectionError):
    """A spike link between Dask workers received something it must refuse
    (an unauthenticated peer, an id or step outside what the sender owns)."""


class CheckpointError(StoreError):
    """A Dask checkpoint is damaged or forged (the message names it and
    offers resuming from an earlier one)."""
