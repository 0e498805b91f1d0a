'use strict';
// Identity: the benchmark's function does nothing, so the numbers are edgefn's own
// (the Node twin of bench/functions/identity/index.py).
exports.handler = (event) => event;
