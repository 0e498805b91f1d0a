"""``python -I -m edgefn.runtimes.python [flags]``: one Python runtime instance."""

import gc
import sys

# Cold start: the imports allocate many objects that all live on; collecting
# during them is wasted work (serving freezes them once the handler is loaded).
gc.disable()
from edgefn.runtimes.python import main  # noqa: E402

gc.enable()
raise SystemExit(main(sys.argv[1:]))
