"""The skill's own errors, which callers see as ``422 skill-error`` with their kind."""

from __future__ import annotations

from typing import Any, Tuple

KINDS = ("invalid-input", "denied", "not-found", "unavailable", "failed")


class SkillError(Exception):
    """An error the skill raises on purpose: a kind (one of :data:`KINDS`) and a message."""

    def __init__(self, kind: str, message: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown skill error kind {kind!r}; use one of {KINDS}")
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message

    @classmethod
    def invalid_input(cls, message: str) -> "SkillError":
        """The input is well-formed JSON but not acceptable to the skill."""
        return cls("invalid-input", message)

    @classmethod
    def denied(cls, message: str) -> "SkillError":
        """The skill was refused something it needed (a capability, a host)."""
        return cls("denied", message)

    @classmethod
    def not_found(cls, message: str) -> "SkillError":
        """Something the input referred to does not exist."""
        return cls("not-found", message)

    @classmethod
    def unavailable(cls, message: str) -> "SkillError":
        """A dependency is unavailable; retrying later may succeed."""
        return cls("unavailable", message)

    @classmethod
    def failed(cls, message: str) -> "SkillError":
        """Any other failure."""
        return cls("failed", message)


def host_error_kind(error: Any) -> Tuple[str, str]:
    """The kind and message of a ``skill-error`` the host answered (a callee's, a
    secret's)."""
    try:
        # The name componentize-py gives our `types` when wasi:http's `types` is imported too.
        from wit_world.imports import omniforge_skill_types as types
    except ImportError:
        from wit_world.imports import types

    for variant, kind in (
        (types.SkillError_InvalidInput, "invalid-input"),
        (types.SkillError_Denied, "denied"),
        (types.SkillError_NotFound, "not-found"),
        (types.SkillError_Unavailable, "unavailable"),
    ):
        if isinstance(error, variant):
            return kind, error.value
    return "failed", getattr(error, "value", "")
