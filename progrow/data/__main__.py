"""`python -m progrow.data SOURCE OUT --resolution R`: build a multi-resolution cache (see `progrow.data.cli`)."""

import sys

from progrow.data.cli import main

if __name__ == "__main__":
    sys.exit(main())
