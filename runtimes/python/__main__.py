"""``python -I -m edgefn.runtimes.python [flags]``: one Python runtime instance."""

import sys

from edgefn.runtimes.python import main

raise SystemExit(main(sys.argv[1:]))
