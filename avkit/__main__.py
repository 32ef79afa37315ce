"""`python -m avkit`: the same as the `avkit` command."""

import sys

from avkit.cli import main

sys.exit(main())
