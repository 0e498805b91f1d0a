'use strict';
/**
 * edgefn's Node runtime: one instance serving one JavaScript handler on
 * `baetyl.Function` (docs/architecture.md, "The runtime instance protocol").
 *
 *   node runtimes/node/index.js --address unix:///tmp/x.sock --codedir DIR \
 *        --handler index.handler [--name NAME] [--message-max BYTES] [--check]
 *
 * Exit status: 0 after a drain (SIGTERM), the parent's EOF or a passed
 * --check; 2 for a bad command line; 3 when the handler cannot be loaded;
 * 1 when the address cannot be served.
 */

// Before anything can print: stdout belongs to the handshake line. Whatever
// the handler (or a module it loads) writes there, console.log included,
// lands on stderr, which the manager relays into its log.
Object.defineProperty(process, 'stdout', {
  configurable: true,
  enumerable: true,
  get: () => process.stderr,
});

const fs = require('fs');
const { Fault, IMPORT_MODULE_ERROR } = require('./faults');
const { loadHandler } = require('./loader');
const { parseOptions, UsageError, USAGE } = require('./options');

const STDOUT_FD = 1;
const METHODS = ['Call', 'Talk'];
const EXIT_USAGE = 2;
const EXIT_LOAD = 3;
const EXIT_LISTEN = 1;

function log(level, message) {
  process.stderr.write(`${level} edgefn-node[${process.pid}]: ${message}\n`);
}

/** Writes the one handshake line on the real stdout (fd 1). */
function handshake(fields) {
  fs.writeSync(STDOUT_FD, JSON.stringify(fields) + '\n');
}

/**
 * Points fd 1 at what fd 2 is (a dup2 done with close/open: the lowest free
 * descriptor is reused), so child processes of the handler also write to
 * stderr. /dev/null when stderr cannot be reopened (a socket), so fd 1 is
 * never left free for an unrelated file or socket to take.
 */
function pointStdoutAtStderr() {
  fs.closeSync(STDOUT_FD);
  let fd;
  try {
    fd = fs.openSync('/proc/self/fd/2', 'a');
  } catch {
    fd = fs.openSync('/dev/null', 'a');
  }
  if (fd !== STDOUT_FD) fs.closeSync(fd); // fd 1 was taken between the two calls: leave it be
}

/** Reports a handler that cannot be loaded: the handshake line, a human line, exit 3. */
function failLoad(fault) {
  handshake({ ready: false, errorType: fault.errorType, errorMessage: fault.errorMessage, errorStack: fault.errorStack });
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

/** EOF on stdin: the manager that holds the pipe is gone, and so are we. */
function watchParent() {
  const gone = () => process.exit(0);
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
    if (server === null) process.exit(0);
    if (draining) {
      log('WARNING', `${signal} again: exiting without finishing the calls in flight`);
      process.exit(1);
    }
    draining = true;
    server.drain().then(
      () => process.exit(0),
      (err) => {
        log('ERROR', `drain failed: ${err.stack || err}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

function readOptions() {
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

async function main() {
  const options = readOptions();
  let dispatcher = null;
  let serving = null;
  watchStrayErrors(() => dispatcher);
  watchSignals(() => serving);
  if (options.parentPipe) watchParent();
  const { codedir, handler } = await loadOrExit(options);
  if (options.check) {
    handshake({ ready: true, pid: process.pid, methods: METHODS });
    process.exit(0);
  }
  // Required only now: --check never pays for gRPC.
  const { Dispatcher } = require('./invoke');
  const { FunctionServer } = require('./server');
  dispatcher = new Dispatcher({
    handler,
    name: options.name,
    codedir,
    messageMax: options.messageMax,
    warn: (line) => log('WARNING', line),
  });
  const server = new FunctionServer({ dispatcher, messageMax: options.messageMax });
  let port;
  try {
    port = await server.listen(options.address);
  } catch (err) {
    handshake({ ready: false, errorType: 'Runtime.Unavailable', errorMessage: `cannot listen on ${options.address}: ${err.message}`, errorStack: [] });
    log('ERROR', `cannot listen on ${options.address}: ${err.message}`);
    process.exit(EXIT_LISTEN);
  }
  serving = server;
  const address = options.address.startsWith('unix:') ? options.address : options.address.replace(/:\d+$/, `:${port}`);
  handshake({ ready: true, pid: process.pid, methods: METHODS, address });
  pointStdoutAtStderr();
}

main();
