"""Structured logging into the host's logs, tagged with the tenant, skill and request id.

The host bounds each message's size and the number of messages per invocation; messages past
the bounds are dropped and counted, never an error.
"""

from __future__ import annotations

LEVELS = ("trace", "debug", "info", "warn", "error")


def log(level: str, message: str) -> None:
    """Writes ``message`` at ``level`` (one of :data:`LEVELS`)."""
    from wit_world.imports import log as wit

    levels = {
        "trace": wit.Level.TRACE,
        "debug": wit.Level.DEBUG,
        "info": wit.Level.INFO,
        "warn": wit.Level.WARN,
        "error": wit.Level.ERROR,
    }
    if level not in levels:
        raise ValueError(f"unknown log level {level!r}; use one of {LEVELS}")
    wit.log(levels[level], str(message))


def trace(message: str) -> None:
    """Writes a trace message."""
    log("trace", message)


def debug(message: str) -> None:
    """Writes a debug message."""
    log("debug", message)


def info(message: str) -> None:
    """Writes an info message."""
    log("info", message)


def warn(message: str) -> None:
    """Writes a warning."""
    log("warn", message)


def error(message: str) -> None:
    """Writes an error message."""
    log("error", message)
