"""edgefn: a serverless function runtime and MQTT message router for edge machines."""

import os as _os

__version__ = "0.1.0"

# In the repository, edgefn's subpackages are folders beside this one (manager/,
# runtimes/, proto/: the folders are the architecture), where an installed
# edgefn has them inside it. So that `python -m edgefn` and the tests work from
# the repository's root too (the root on sys.path finds this folder first), look
# for them beside it when they are not inside it.
if not _os.path.isdir(_os.path.join(__path__[0], "manager")):
    __path__.append(_os.path.dirname(_os.path.realpath(__path__[0])))
