"""``python -m brainsim`` runs the command line (see brainsim.cli)."""
import sys

from .cli import main

sys.exit(main())
