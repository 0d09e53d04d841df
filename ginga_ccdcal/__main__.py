"""``python -m ginga_ccdcal`` is the ``ginga-ccdcal`` command."""

import sys

from .cli import main

sys.exit(main())
