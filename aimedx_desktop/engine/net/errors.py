"""The one exception for what goes wrong on the network that the user can act on."""

from __future__ import annotations


class NetworkError(Exception):
    """A DICOM node that cannot be reached, refuses us, or fails mid-way.

    str(error) is one line naming the node and the reason, fit to show as is.
    """
