"""The tenant's secrets (since WIT 0.1.3): API keys and passwords the tenant's owners and
admins set (``PUT /api/v1/secrets/{name}``), read by name. Needs ``world = "skill"`` and the
names under ``[permissions] secrets`` in ``omniforge.toml``::

    [permissions]
    secrets = ["weather-api-key"]

A name the manifest does not declare raises :class:`SecretError` of kind ``denied``; one the
tenant has not set, ``not-found``; a store that cannot be read now, ``unavailable``. Let it
propagate and the caller sees that kind, naming the secret, never a value. Keep a value only
as long as the call that needs it, and never log it or return it.
"""

from __future__ import annotations

from .errors import SkillError, host_error_kind


class SecretError(SkillError):
    """Reading secret ``name`` failed, with the host's kind and message."""

    def __init__(self, name: str, kind: str, message: str) -> None:
        super().__init__(kind, message)
        self.name = name


def get(name: str) -> str:
    """The value of the tenant's secret ``name``."""
    from componentize_py_types import Err
    from wit_world.imports import secrets

    try:
        return secrets.get(name)
    except Err as e:
        kind, message = host_error_kind(e.value)
        raise SecretError(name, kind, message) from None
