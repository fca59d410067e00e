# The SDK's stand-in host (config, kv, log) starts empty for every test.
from router_guest.pytest_plugin import router_host  # noqa: F401
