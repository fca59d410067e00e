"""Logging into the router's log.

The router tags every line with the plugin's name and filters by level as its
own log configuration says, so there is nothing to set up in the plugin.
Messages are plain text; keep them to one line. Outside a component (a plugin's
tests) they are captured by `router_guest.testing` (`testing.logs()`) and echoed
to stderr, where pytest shows them for a failing test.
"""

from __future__ import annotations

from . import _host

if _host.IN_COMPONENT:
    _LEVELS = {
        "trace": _host.wit_log.Level.TRACE,
        "debug": _host.wit_log.Level.DEBUG,
        "info": _host.wit_log.Level.INFO,
        "warn": _host.wit_log.Level.WARN,
        "error": _host.wit_log.Level.ERROR,
    }
    _log = _host.wit_log.log

    def _write(level: str, message: object) -> None:
        _log(_LEVELS[level], str(message))

else:

    def _write(level: str, message: object) -> None:
        from . import testing

        testing._log(level, str(message))


def error(message: object) -> None:
    """Logs `message` at error level: something failed."""
    _write("error", message)


def warn(message: object) -> None:
    """Logs `message` at warn level: something unexpected that the plugin recovered from."""
    _write("warn", message)


def info(message: object) -> None:
    """Logs `message` at info level: normal operation."""
    _write("info", message)


def debug(message: object) -> None:
    """Logs `message` at debug level: diagnostics for developers."""
    _write("debug", message)


def trace(message: object) -> None:
    """Logs `message` at trace level: very detailed diagnostics."""
    _write("trace", message)
