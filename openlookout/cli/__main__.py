"""`python -m openlookout.cli ...` = `openlookout ...`."""

import sys

from openlookout.cli.main import main

sys.exit(main())
