import sys
from pathlib import Path

# A fresh stand-in host around every test.
from router_guest.pytest_plugin import router_host  # noqa: F401

# The plugin's module, also when pytest runs from elsewhere (`pytest plugins/python`).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
