"""``python -m nct_md`` runs the ``nct-md`` command."""

import sys

from nct_md.cli import main

sys.exit(main())
