"""SQL filter functions (SPEC §9): ``select <exprs> [where <cond>]`` over each message.

The manager runs them in its own process::

    fn = SqlFunction.compile("filter", "select qos() as qos, topic() as topic, * where id < 10")
    fn.evaluate(b'{"id": 1}', "t", 1)   # b'{"qos":1,"topic":"t","id":1}'

``edgefn runtime sql`` serves the same engine over gRPC. The dialect is
documented in docs/sql.md.
"""

from .engine import SqlFunction
from .parser import SqlError

__all__ = ["SqlError", "SqlFunction"]
