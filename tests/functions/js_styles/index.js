// Every way a Node handler can answer, one export each; the tests pick one with --handler.
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Baetyl's style: answers through the callback, later.
exports.callback = (event, context, callback) => {
  setTimeout(() => callback(null, { style: 'callback', event }), 5);
};

// Returns its answer.
exports.value = (event, context) => ({ style: 'value', event });

exports.asyncFn = async (event, context) => {
  await sleep(5);
  return { style: 'async', event };
};

exports.promise = (event, context) =>
  new Promise((resolve) => setTimeout(() => resolve({ style: 'promise', event }), 5));

// What the handler sees.
exports.echo = (event, context) => ({
  isBuffer: Buffer.isBuffer(event),
  event: Buffer.isBuffer(event) ? event.toString('base64') : event,
  context,
  timestampType: typeof context.messageTimestamp,
});

// The result kind named by the event.
const results = {
  emptyString: () => '',
  zero: () => 0,
  false: () => false,
  null: () => null,
  undefined: () => undefined,
  emptyBuffer: () => Buffer.alloc(0),
  buffer: () => Buffer.from([0, 1, 2, 255]),
  uint8array: () => new Uint8Array([7, 8, 9]),
  string: () => 'hi',
  circular: () => {
    const loop = { name: 'loop' };
    loop.self = loop;
    return loop;
  },
  bigint: () => ({ n: 10n }),
  function: () => () => 1,
};
exports.result = (event) => results[event.kind]();

// Answers of any size: the event says how many bytes.
exports.sized = (event) => Buffer.alloc(event.bytes, 0x61);

exports.callbackTwice = (event, context, callback) => {
  callback(null, 'first');
  callback(null, 'second');
};

// Sync calls run one at a time: each records how many were running beside it.
let running = 0;
exports.syncOrder = (event, context, callback) => {
  running += 1;
  const overlap = running;
  setTimeout(() => {
    running -= 1;
    callback(null, { n: event.n, overlap });
  }, 10);
};

// Async calls run concurrently: same record, through a promise.
exports.asyncOverlap = async (event) => {
  running += 1;
  const before = running;
  await sleep(event.ms ?? 50);
  const overlap = Math.max(before, running);
  running -= 1;
  return { n: event.n, overlap };
};

// Says on stderr when it starts, so a test can wait for the call to be in flight.
exports.slow = async (event) => {
  console.log(`slow call ${event.n ?? 0} started`);
  await sleep(event.ms);
  return { slept: event.ms };
};

// Fails every call whose event says so; the others echo.
exports.maybeFail = (event) => {
  if (event.fail) throw new RangeError(`call ${event.n} fails`);
  return { n: event.n };
};

// Throws from a timer, outside the handler's frame: the call still fails.
exports.uncaught = (event, context, callback) => {
  setTimeout(() => {
    throw new Error('thrown from a timer');
  }, 1);
};

// Answers, then throws from a timer once the call is over: logged, never fatal.
exports.throwLater = () => {
  setTimeout(() => {
    throw new Error('thrown after the answer');
  }, 5);
  return 'answered';
};

exports.rejectLater = () => {
  setTimeout(() => Promise.reject(new Error('rejected after the answer')), 5);
  return 'answered';
};

exports.notFunction = 42;

exports.api = { get: (event) => ({ nested: true }) };
