"""`python -m aimedx_desktop` is the `aimedx` command."""

import sys

from aimedx_desktop.cli import main

sys.exit(main())
