"""``python -I -m edgefn.runtimes.sql [flags]``: one SQL runtime instance.

Importable too (``from edgefn.runtimes.sql.__main__ import main``): it serves
only when run as a program.
"""

import sys

from edgefn.runtimes.sql.runtime import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
