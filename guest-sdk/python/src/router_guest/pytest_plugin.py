"""A pytest plugin that gives every test a fresh stand-in host.

Enable it by importing its fixture into a plugin project's `conftest.py`
(`pytest_plugins` would do too, but only in a top-level conftest)::

    from router_guest.pytest_plugin import router_host  # noqa: F401

Every test then starts with no config, an empty kv store and no captured logs,
and may ask for the `router_host` fixture (the `router_guest.testing` module).
"""

import pytest

from . import testing


@pytest.fixture(autouse=True)
def router_host():
    """The stand-in host (`router_guest.testing`), reset before and after the test."""
    testing.reset()
    yield testing
    testing.reset()
