"""``python -P -m edgefn.runtimes.python [flags]``: one Python runtime instance."""

import gc
import os
import sys

# Cold start: the imports allocate many objects that all live on; collecting
# during them is wasted work (serving freezes them once the handler is loaded).
gc.disable()
from edgefn.runtimes.python import main  # noqa: E402

if os.environ.get("EDGEFN_STANDBY") == "1":  # started ahead of its function (edgefn.manager.standby)
    from edgefn.runtimes.python.standby import become_assigned, preload

    preload()
    become_assigned()
gc.enable()
raise SystemExit(main(sys.argv[1:]))
