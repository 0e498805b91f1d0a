'use strict';
/**
 * edgefn's Node runtime: one instance serving one JavaScript handler on
 * `baetyl.Function` (docs/architecture.md, "The runtime instance protocol").
 *
 *   node runtimes/node/index.js --address unix:///tmp/x.sock --codedir DIR \
 *        --handler index.handler [--name NAME] [--message-max BYTES] [--check]
 *
 * Exit status: 0 after a drain (SIGTERM/SIGINT), the parent's EOF or a passed
 * --check; 1 when the address cannot be served (or a second signal cut the
 * drain short); 2 for a bad command line; 3 when the handler cannot be loaded.
 */

const fs = require('fs');
const { isAsyncFunction } = require('util').types;

const STDOUT_FD = 1;
const METHODS = ['Call', 'Talk'];
const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;
const EXIT_LOAD = 3;

/**
 * Takes stdout for the handshake line before any user code runs: fd 1 is
 * reopened as a descriptor kept for the handshake, then fd 1 is pointed at
 * what fd 2 is (a dup2 done with close/open, which reuses the lowest free
 * descriptor). So console.log, process.stdout and the handler's child
 * processes all land on stderr, which the manager relays into its log.
 * (Reopening makes a second description of stderr: for a pipe that is all
 * the same; a file stderr should be opened with O_APPEND, or the two
 * descriptions write over each other.)
 * @returns {number} the descriptor the handshake line is written to
 */
function takeStdout() {
  // process.stdout is created lazily: before it ever is, make it stderr's stream.
  Object.defineProperty(process, 'stdout', { configurable: true, enumerable: true, get: () => process.stderr });
  let saved;
  try {
    saved = fs.openSync('/proc/self/fd/1', 'a');
  } catch {
    return STDOUT_FD; // a socket, or closed: the handshake goes to fd 1 as it is
  }
  fs.closeSync(STDOUT_FD);
  let fd;
  try {
    fd = fs.openSync('/proc/self/fd/2', 'a');
  } catch {
    fd = fs.openSync('/dev/null', 'a'); // never leave fd 1 free for an unrelated file to take
  }
  if (fd !== STDOUT_FD) fs.closeSync(fd);
  return saved;
}

const handshakeFd = takeStdout();

const { Fault, IMPORT_MODULE_ERROR, UNAVAILABLE_FAULT, UNKNOWN_FAULT } = require('./faults');
const { loadHandler } = require('./loader');
const { parseOptions, UsageError, USAGE, HELP, wantsHelp } = require('./options');

function log(level, message) {
  process.stderr.write(`${level} edgefn-node[${process.pid}]: ${message}\n`);
}

let handshakeDone = false;

/** Writes the one handshake line (once), then lets go of the real stdout. */
function handshake(fields) {
  if (handshakeDone) return;
  handshakeDone = true;
  try {
    fs.writeSync(handshakeFd, JSON.stringify(fields) + '\n');
  } catch {
    // Nobody reads stdout: the handshake is for a parent that may not exist.
  }
  if (handshakeFd !== STDOUT_FD) fs.closeSync(handshakeFd);
}

/** Reports a handler that cannot be loaded: the handshake line, a human line, exit 3. */
function failLoad(fault) {
  handshake({ ready: false, errorType: fault.errorType, errorMessage: fault.errorMessage, errorStack: fault.errorStack });
  // Under a manager, the handshake carries the fault and the manager logs it: once, not twice.
  if (process.env.EDGEFN_PARENT_PIPE === '1') process.exit(EXIT_LOAD);
  log('ERROR', `cannot load the handler: ${fault.errorType}: ${fault.errorMessage}`);
  for (const line of fault.errorStack) process.stderr.write(`    ${line}\n`);
  process.exit(EXIT_LOAD);
}

/** Errors raised outside any handler frame: fail the call they came from, else log them. */
function watchStrayErrors(getDispatcher) {
  const stray = (kind) => (err) => {
    const dispatcher = getDispatcher();
    const routed = dispatcher !== null && dispatcher.failCurrent(err);
    const text = err instanceof Error ? err.stack || String(err) : String(err);
    log(routed ? 'WARNING' : 'ERROR', `${kind}${routed ? ' failed a call' : ' outside any call'}: ${text}`);
  };
  process.on('uncaughtException', stray('uncaught exception'));
  process.on('unhandledRejection', stray('unhandled rejection'));
}

/**
 * EOF on stdin: the manager that holds the pipe is gone, and so are we. (The
 * event loop notices between calls: a handler stuck in a synchronous loop
 * is the manager's timeout to kill.)
 */
function watchParent() {
  const gone = () => {
    try {
      // We lead our process group (the manager starts us in a new session): a
      // handler's children go with us. Outside such a group this throws, harmlessly.
      process.kill(-process.pid, 'SIGKILL');
    } catch {
      // Not a group leader: only we exit.
    }
    process.exit(EXIT_OK);
  };
  process.stdin.on('end', gone);
  process.stdin.on('error', gone);
  process.stdin.on('data', () => {});
  process.stdin.resume();
}

/** SIGTERM/SIGINT: drain, then exit 0 (at once before serving); a second signal exits at once. */
function watchSignals(getServer) {
  let draining = false;
  const onSignal = (signal) => {
    const server = getServer();
    if (server === null) process.exit(EXIT_OK);
    if (draining) {
      log('WARNING', `${signal} again: exiting without finishing the calls in flight`);
      process.exit(EXIT_FAILED);
    }
    draining = true;
    log('INFO', `${signal}: stopping, finishing calls in flight`);
    server.drain().then(
      () => process.exit(EXIT_OK),
      (err) => {
        log('ERROR', `drain failed: ${err.stack || err}`);
        process.exit(EXIT_FAILED);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

function readOptions() {
  if (wantsHelp(process.argv.slice(2))) {
    fs.writeSync(handshakeFd, HELP); // the real stdout: process.stdout is stderr by now
    process.exit(EXIT_OK);
  }
  try {
    return parseOptions(process.argv.slice(2), process.env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`edgefn node runtime: ${err.message}\n${USAGE}\n`);
    process.exit(EXIT_USAGE);
  }
}

async function loadOrExit(options) {
  let codedir;
  try {
    codedir = fs.realpathSync(options.codedir);
  } catch (err) {
    failLoad(new Fault(IMPORT_MODULE_ERROR, `codedir ${options.codedir} cannot be read: ${err.message}`));
  }
  try {
    return { codedir, handler: await loadHandler(codedir, options.handler) };
  } catch (err) {
    failLoad(err instanceof Fault ? err : new Fault(IMPORT_MODULE_ERROR, String(err && err.stack)));
  }
}

/** Binds the server, or reports why not (handshake, log) and exits 1. */
async function listenOrExit(server, address) {
  try {
    const port = await server.listen(address);
    return address.startsWith('unix:') ? address : address.replace(/:\d+$/, `:${port}`);
  } catch (err) {
    const message = `cannot listen on ${address}: ${err.message}`;
    handshake({ ready: false, errorType: UNAVAILABLE_FAULT, errorMessage: message, errorStack: [] });
    log('ERROR', message);
    process.exit(EXIT_FAILED);
  }
}

async function main() {
  const options = readOptions();
  let dispatcher = null;
  let serving = null;
  watchStrayErrors(() => dispatcher);
  watchSignals(() => serving);
  if (options.parentPipe && !options.check) watchParent();
  const { codedir, handler } = await loadOrExit(options);
  // Only an async function is known to be concurrent before it runs (a plain
  // function returning promises runs concurrently too, without the promise).
  const concurrent = isAsyncFunction(handler);
  if (options.check) {
    handshake({ ready: true, pid: process.pid, methods: METHODS, concurrent });
    process.exit(EXIT_OK);
  }
  // Required only now: --check never pays for gRPC.
  const { Dispatcher } = require('./invoke');
  const { withCodeCache } = require('./codecache');
  const { value: FunctionServer, save: saveCodeCache } = withCodeCache(() => require('./server').FunctionServer, process.env);
  dispatcher = new Dispatcher({
    handler,
    name: options.name,
    codedir,
    messageMax: options.messageMax,
    warn: (line) => log('WARNING', line),
  });
  const server = new FunctionServer({ dispatcher, messageMax: options.messageMax, name: options.name });
  const address = await listenOrExit(server, options.address);
  serving = server;
  // batch: Talk frames may carry several calls (Batch), and then answers travel batched too.
  handshake({ ready: true, pid: process.pid, methods: METHODS, concurrent, batch: true, address });
  setImmediate(saveCodeCache); // after the handshake: only the first start of a version writes
}

main().catch((err) => {
  // A runtime bug (or a broken install, e.g. no proto file), never the user's: say so and stop.
  const message = `the runtime failed to start: ${err && err.stack ? err.stack : err}`;
  handshake({ ready: false, errorType: UNKNOWN_FAULT, errorMessage: message, errorStack: [] });
  log('ERROR', message);
  process.exit(EXIT_FAILED);
});
