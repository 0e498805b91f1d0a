// Module state: a counter and a global, per process.
let calls = 0;

exports.handler = (event, context) => {
  calls += 1;
  globalThis.lastFunction = globalThis.lastFunction ?? context.functionName;
  return { calls, firstSeenBy: globalThis.lastFunction };
};
