"""Write OmniForge skills in Python.

A skill is a function from the caller's JSON input (parsed into Python values) to a
JSON-serializable result. Decorate it with :func:`skill`::

    from omniforge_sdk import Context, SkillError, log, skill

    @skill
    def run(ctx: Context, input: dict) -> dict:
        name = str(input.get("name", "")).strip()
        if not name:
            raise SkillError.invalid_input("name must not be blank")
        log.info(f"greeting {name}")
        return {"greeting": f"Hello, {name}!"}

``omniforge skill build`` turns the module into a WebAssembly component with
componentize-py. Raise :class:`SkillError` (or let a :mod:`kv`, :mod:`http`,
:mod:`secrets` or :mod:`skills` error propagate) for the skill's own errors; any other exception is reported
as ``failed`` with its type and message, and its traceback goes to the host's log.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Optional

from . import http, kv, log, secrets, skills
from .errors import SkillError

__all__ = ["Context", "SkillError", "http", "kv", "log", "secrets", "skill", "skills"]


def _preload_bindings() -> None:
    """Imports the world's binding modules now. componentize-py snapshots the interpreter
    after importing the app, and a binding module first imported later, at invocation time,
    is not found; which modules exist depends on the world the manifest allows, and none
    exist outside a component (in plain unit tests), so missing ones are skipped."""
    import importlib

    for name in (
        "componentize_py_types",
        "wit_world.imports.types",
        "wit_world.imports.omniforge_skill_types",
        "wit_world.imports.log",
        "wit_world.imports.context",
        "wit_world.imports.kv",
        "wit_world.imports.secrets",
        "wit_world.imports.skills",
        "wit_world.imports.outgoing_handler",
        "wit_world.imports.wasi_http_types",
        "wit_world.imports.streams",
        "wit_world.imports.poll",
    ):
        try:
            importlib.import_module(name)
        except ImportError:
            pass


_preload_bindings()


@dataclass(frozen=True)
class Context:
    """Who is calling and how long the skill has; use it for logging and to stop early, not
    for authorization (the host has already decided what the skill may do)."""

    tenant: str
    """Id of the tenant the invocation runs for (`ten_…`, stable; not its slug)."""
    skill: str
    """The skill's full name, ``namespace/name``."""
    version: str
    """The exact version running."""
    request_id: str
    """The request id, for matching the skill's logs with the caller's request."""
    deadline_unix_ms: int
    """When the host ends the invocation, in milliseconds since the Unix epoch."""

    def remaining_ms(self) -> int:
        """Milliseconds left before the host ends the invocation (0 once past it)."""
        return max(0, self.deadline_unix_ms - int(time.time() * 1000))

    def task_id(self) -> Optional[str]:
        """The durable task this invocation runs for (``tsk_…``), or ``None`` for a
        synchronous call. A task runs at least once (a run lost with its server runs again),
        so key side effects outside the platform on it to make them happen once."""
        from wit_world.imports import context

        return context.task_id()

    def attempt(self) -> int:
        """Which run of the task this is: 1 for the first, 2 after a lost run, …; 1
        without a task."""
        from wit_world.imports import context

        return context.attempt()


def skill(func: Callable[[Context, Any], Any]) -> Callable[[Context, Any], Any]:
    """Makes ``func(ctx, input)`` the skill of the module that defines it.

    componentize-py looks for the export's implementation as a class named ``Handler`` in
    the application module; this defines it there. ``func`` itself is returned unchanged,
    so it can still be called directly (in unit tests, for example).
    """
    module = sys.modules[func.__module__]
    if getattr(module, "Handler", None) is not None:
        raise RuntimeError(f"{func.__module__} already defines a skill (Handler)")
    module.Handler = _handler_for(func)  # type: ignore[attr-defined]
    return func


def _handler_for(func: Callable[[Context, Any], Any]) -> type:
    class Handler:
        """The ``omniforge:skill/handler`` export, calling the decorated function."""

        def invoke(self, ctx: Any, input: str) -> str:
            # The bindings exist only inside the component (componentize-py generates them),
            # so they are imported here, not when the SDK is imported.
            from componentize_py_types import Err

            try:
                value = json.loads(input)
            except ValueError as e:
                raise Err(_wit_error(SkillError.invalid_input(f"the input is not JSON: {e}")))
            context = Context(
                tenant=ctx.tenant,
                skill=ctx.skill,
                version=ctx.version,
                request_id=ctx.request_id,
                deadline_unix_ms=ctx.deadline_unix_ms,
            )
            try:
                result = func(context, value)
            except SkillError as e:
                raise Err(_wit_error(e))
            except Exception as e:  # noqa: BLE001 - every failure becomes the skill's error
                log.error(traceback.format_exc())
                raise Err(_wit_error(SkillError.failed(f"{type(e).__name__}: {e}")))
            try:
                return json.dumps(result, allow_nan=False, separators=(",", ":"))
            except (TypeError, ValueError) as e:
                raise Err(_wit_error(SkillError.failed(f"the result is not JSON: {e}")))

    return Handler


def _wit_error(error: SkillError) -> Any:
    try:
        # The name componentize-py gives our `types` when wasi:http's `types` is imported too.
        from wit_world.imports import omniforge_skill_types as types
    except ImportError:
        from wit_world.imports import types

    variant = {
        "invalid-input": types.SkillError_InvalidInput,
        "denied": types.SkillError_Denied,
        "not-found": types.SkillError_NotFound,
        "unavailable": types.SkillError_Unavailable,
    }.get(error.kind, types.SkillError_Failed)
    return variant(error.message)
