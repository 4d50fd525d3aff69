"""`python -m openlookout.edge --models DIR`: the edge agent, as the Greengrass recipe starts it."""

import sys

from openlookout.edge.command import main

sys.exit(main())
