"""The skill's key-value store: bytes under string keys, kept by the host per tenant and per
skill. Needs ``world = "skill"`` and ``[permissions] kv = true`` in ``omniforge.toml``.

Failures raise :class:`KvError`, a :class:`~omniforge_sdk.SkillError`: let it propagate and
the caller sees ``denied``, ``unavailable`` or ``failed``.
"""

from __future__ import annotations

import json
from typing import Any, List, Optional

from .errors import SkillError


class KvError(SkillError):
    """A key-value operation failed; ``reason`` is ``denied``, ``too-large``,
    ``quota-exceeded``, ``not-a-counter`` or ``unavailable``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        kind = {"denied": "denied", "unavailable": "unavailable"}.get(reason, "failed")
        message = {
            "denied": "the key-value store is not granted (declare [permissions] kv = true)",
            "quota-exceeded": "the key-value storage quota is used up",
            "not-a-counter": "the value is not a counter",
        }.get(reason, f"key-value store: {reason} {detail}".strip())
        super().__init__(kind, message)
        self.reason = reason


def _call(operation: str, *args: Any) -> Any:
    from componentize_py_types import Err
    from wit_world.imports import kv

    try:
        return getattr(kv, operation)(*args)
    except Err as e:
        error = e.value
        if isinstance(error, kv.KvError_Denied):
            raise KvError("denied") from None
        if isinstance(error, kv.KvError_TooLarge):
            raise KvError("too-large", error.value) from None
        if isinstance(error, kv.KvError_QuotaExceeded):
            raise KvError("quota-exceeded") from None
        if isinstance(error, kv.KvError_NotACounter):
            raise KvError("not-a-counter") from None
        raise KvError("unavailable", getattr(error, "value", "")) from None


def get(key: str) -> Optional[bytes]:
    """The value under ``key``, or ``None``."""
    return _call("get", key)


def set(key: str, value: bytes) -> None:  # noqa: A001 - the store's own verb
    """Stores ``value`` under ``key``, replacing any previous value."""
    _call("set", key, bytes(value))


def delete(key: str) -> None:
    """Removes ``key``; removing a missing key succeeds."""
    _call("delete", key)


def exists(key: str) -> bool:
    """Whether ``key`` has a value."""
    return _call("exists", key)


def list_keys(prefix: str = "", limit: int = 100) -> List[str]:
    """Up to ``limit`` keys starting with ``prefix``, in byte order."""
    return _call("list_keys", prefix, limit)


def increment(key: str, delta: int = 1) -> int:
    """Atomically adds ``delta`` to the counter under ``key`` (missing: 0); the new value."""
    return _call("increment", key, delta)


def get_json(key: str, default: Any = None) -> Any:
    """The value under ``key`` parsed as JSON, or ``default`` when there is none."""
    raw = get(key)
    return default if raw is None else json.loads(raw)


def set_json(key: str, value: Any) -> None:
    """Stores ``value`` as JSON under ``key``."""
    set(key, json.dumps(value, separators=(",", ":")).encode())
