"""``python -m flows.bronze``: see ``flows.cli.bronze_main``."""

import sys

from flows.cli import bronze_main, exit_cleanly

if __name__ == "__main__":
    sys.exit(exit_cleanly(bronze_main))
