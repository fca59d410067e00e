"""The plugin's configuration: the `config` table of its `[[plugin]]` entry in
the router's TOML, for example `config = { source = "/inventory" }`.

Values arrive as strings (a number or boolean in the TOML as its text), with
`${VAR:-default}` already interpolated by the router. Read them inside the
handler, not at import time: the module is imported when the component is
built, where there is no router to ask.
"""

from __future__ import annotations

from typing import Optional

from . import _host
from .errors import HandlerError

if _host.IN_COMPONENT:
    # An instance's configuration never changes (a reload brings new instances),
    # so each key is asked of the host once per instance: a plugin that reads its
    # configuration for every event then makes no host call for it. The cache is
    # empty in the build-time snapshot, since nothing runs the handler there.
    _cache: dict = {}
    _host_get = _host.wit_config.get
    _MISSING = object()

    def get(key: str) -> Optional[str]:
        """The value configured for `key`, if any."""
        value = _cache.get(key, _MISSING)
        if value is _MISSING:
            value = _cache[key] = _host_get(key)
        return value

else:

    def get(key: str) -> Optional[str]:
        """The value configured for `key`, if any (outside a component, what
        `router_guest.testing.set_config` set)."""
        from . import testing

        return testing._config.get(key)


def get_or(key: str, default: str) -> str:
    """The value configured for `key`, or `default` when there is none."""
    value = get(key)
    return default if value is None else value


def require(key: str) -> str:
    """The value configured for `key`, or a fatal `HandlerError` naming the
    missing key: without it the plugin cannot handle any event, and redelivery
    will not add it."""
    value = get(key)
    if value is None:
        raise HandlerError.fatal(
            f"missing plugin config `{key}`: set it in the plugin's `config` table"
        )
    return value
