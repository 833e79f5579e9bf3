"""``python -m fmlm``: see ``fmlm.cli``."""

import sys

from fmlm.cli import main

sys.exit(main())
