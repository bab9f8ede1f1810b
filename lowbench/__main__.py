"""`python -m lowbench` is the same CLI as the `lowbench` console script."""

import sys

from lowbench.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
