"""The gateway's exception family.

``GatewayError`` is what the gateway raises on purpose; ``ProfileError`` is the one a
characteristic parser raises for a value that does not follow its Bluetooth SIG (or BTHome)
format. Its message names the characteristic, the field and what is wrong, because it travels to
the dead-letter topic next to the raw bytes and is all an engineer has to go on.
"""

from __future__ import annotations

from homevitals.vocab.errors import HomevitalsError

__all__ = ["GatewayError", "ProfileError"]


class GatewayError(HomevitalsError):
    """Base of every error the gateway raises on purpose."""


class ProfileError(GatewayError):
    """A characteristic value (or BTHome service data) is malformed or not supported.

    e.g. ``0x2A35: flags 0x03 announce a time stamp but only 7 bytes``.
    """
