"""``python -m edgesense`` runs the command line."""

import sys

from edgesense.cli.main import main

sys.exit(main())
