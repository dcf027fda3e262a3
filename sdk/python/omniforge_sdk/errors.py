"""The skill's own errors, which callers see as ``422 skill-error`` with their kind."""

from __future__ import annotations

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
