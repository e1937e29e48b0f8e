"""`python -m daemon`: the `portald` command (daemon/cli)."""

import sys

from daemon import cli

if __name__ == "__main__":
    sys.exit(cli.main())
