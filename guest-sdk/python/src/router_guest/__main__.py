"""`python -m router_guest build ...`: the same as the `router-py` command."""

import sys

from .build import main

sys.exit(main())
