"""Calling other skills through the host. Needs ``world = "skill"`` and the callee under
``[permissions] skills`` in ``omniforge.toml``, with a version requirement::

    [permissions]
    skills = { "examples/text-stats" = "^0.1" }

The callee runs in its own sandbox with its own permissions, for the same tenant, and shares
this invocation's budget: its fuel comes out of what is left of ours, and it ends no later
than our deadline.

Failures raise :class:`InvokeError`, a :class:`~omniforge_sdk.SkillError` with the kind and
message the host gave: let it propagate and the caller sees the callee's error unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import SkillError, host_error_kind


class InvokeError(SkillError):
    """Invoking ``skill`` failed, with the host's kind and message unchanged: ``denied`` (not
    granted, not installed by the tenant, a cycle, or the call chain too deep),
    ``not-found`` (no such skill or no matching version), ``invalid-input`` (the callee
    refused the input), ``failed`` (the callee ran out of a limit, timed out, trapped or
    broke its output schema), ``unavailable`` (the callee cannot start now; retrying may
    succeed), or the callee's own error of any kind."""

    def __init__(self, skill: str, kind: str, message: str) -> None:
        super().__init__(kind, message)
        self.skill = skill


def invoke(name: str, input: Any, version: str = "") -> Any:
    """Invokes skill ``name`` (``namespace/name``) with ``input`` (any JSON-serializable
    value) and returns its output, parsed from JSON.

    ``version`` narrows the manifest's version requirement for this call (``"=0.1.2"``,
    ``"^0.1.2"``); empty uses the manifest's. A non-serializable ``input`` raises
    ``TypeError`` or ``ValueError`` before anything is called.
    """
    text = json.dumps(input, allow_nan=False, separators=(",", ":"))

    from componentize_py_types import Err
    from wit_world.imports import skills

    try:
        output = skills.invoke(name, version, text)
    except Err as e:
        kind, message = host_error_kind(e.value)
        raise InvokeError(name, kind, message) from None
    try:
        return json.loads(output)
    except ValueError as e:
        raise InvokeError(name, "failed", f"the output of {name} is not JSON: {e}") from None
