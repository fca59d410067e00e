# A fresh stand-in host around every test.
from router_guest.pytest_plugin import router_host  # noqa: F401
