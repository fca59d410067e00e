"""Which host the SDK talks to: the router's imports inside a component, or the
stand-in of `router_guest.testing` everywhere else.

componentize-py puts the generated bindings (`wit_world`) on the path of the
component it builds, and only there: so a failed import means the code runs
natively (under pytest), decided once when the SDK is first imported.
"""

try:
    from componentize_py_types import Err as WitErr
    from wit_world.imports import config as wit_config
    from wit_world.imports import kv as wit_kv
    from wit_world.imports import log as wit_log
    from wit_world.imports import types as wit_types

    IN_COMPONENT = True
except ImportError:  # not inside a component: the native stand-in host
    WitErr = None
    wit_config = wit_kv = wit_log = wit_types = None
    IN_COMPONENT = False
