pytest_plugins = ["router_guest.pytest_plugin"]
