"""``python -m flows.silver``: see ``flows.cli.silver_main``."""

import sys

from flows.cli import exit_cleanly, silver_main

if __name__ == "__main__":
    sys.exit(exit_cleanly(silver_main))
