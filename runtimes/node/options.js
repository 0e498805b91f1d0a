'use strict';
/**
 * Command line and environment of a runtime instance (the runtime instance
 * protocol in docs/architecture.md): flags win over the environment.
 */

const path = require('path');

const DEFAULT_MESSAGE_MAX = 4 * 1024 * 1024;
const USAGE =
  'usage: node runtimes/node/index.js [--address ADDR] [--name NAME] [--handler MODULE.ATTR]\n' +
  '       [--codedir DIR] [--message-max BYTES] [--check]';

const HELP =
  'usage: edgefn runtime node [--address ADDR] [--name NAME] [--handler MODULE.ATTR]\n' +
  '                           [--codedir DIR] [--message-max BYTES] [--check]\n\n' +
  'One Node.js runtime instance: loads a handler and serves baetyl.Function on an address\n' +
  '(what the manager spawns for runtime: node; usable alone).\n\n' +
  'options (each also read from the environment):\n' +
  '  --address ADDR       host:port, tcp://host:port or unix:///path (EDGEFN_INSTANCE_ADDRESS)\n' +
  '  --name NAME          the function\'s name (EDGEFN_FUNCTION_NAME; default: the codedir\'s name)\n' +
  '  --handler M.ATTR     the module and its exported function (EDGEFN_FUNCTION_HANDLER; default index.handler)\n' +
  '  --codedir DIR        the function\'s folder (EDGEFN_FUNCTION_CODEDIR; default: .)\n' +
  '  --message-max BYTES  the largest input and result, like 4m (EDGEFN_MESSAGE_MAX; default 4m)\n' +
  '  --check              load the handler, report on stdout, exit (0: it loads)\n' +
  '  -h, --help           show this help and exit\n';

/** True when the command line asks for help (before any other check: help always works). */
function wantsHelp(argv) {
  return argv.includes('--help') || argv.includes('-h');
}

/** A command line or environment the runtime cannot start with (exit status 2). */
class UsageError extends Error {}

const FLAGS = new Set(['--address', '--name', '--handler', '--codedir', '--message-max']);
const UNITS = { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/**
 * @typedef {object} Options
 * @property {string|null} address the gRPC bind address (`host:port`, `unix:...`); null in check mode
 * @property {string} name the function's name
 * @property {string} handler `module.attribute`
 * @property {string} codedir absolute path of the function's folder
 * @property {number} messageMax the largest payload in bytes
 * @property {boolean} check load the handler, report, exit
 * @property {boolean} parentPipe stdin is the manager's pipe: EOF means it is gone
 */

/**
 * Builds the options from argv (without `node index.js`) and the environment.
 * @param {string[]} argv
 * @param {NodeJS.ProcessEnv} env
 * @returns {Options}
 */
function parseOptions(argv, env) {
  const flags = parseFlags(argv);
  const check = flags.has('--check');
  const rawAddress =
    flags.get('--address') || env.EDGEFN_INSTANCE_ADDRESS || env.BAETYL_SERVICE_INSTANCE_ADDRESS || '';
  if (!check && rawAddress === '') {
    throw new UsageError('no address: pass --address or set EDGEFN_INSTANCE_ADDRESS');
  }
  const codedir = path.resolve(flags.get('--codedir') || env.EDGEFN_FUNCTION_CODEDIR || '.');
  return Object.freeze({
    address: rawAddress === '' ? null : bindAddress(rawAddress),
    name: flags.get('--name') || env.EDGEFN_FUNCTION_NAME || path.basename(codedir),
    handler: flags.get('--handler') || env.EDGEFN_FUNCTION_HANDLER || 'index.handler',
    codedir,
    messageMax: parseSize(flags.get('--message-max') || env.EDGEFN_MESSAGE_MAX || '', DEFAULT_MESSAGE_MAX),
    check,
    parentPipe: env.EDGEFN_PARENT_PIPE === '1',
  });
}

/** `--flag value` and `--flag=value` pairs, plus the bare `--check`. */
function parseFlags(argv) {
  const flags = new Map();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--check') {
      flags.set(arg, true);
      continue;
    }
    const eq = arg.indexOf('=');
    const key = eq > 0 ? arg.slice(0, eq) : arg;
    if (!FLAGS.has(key)) throw new UsageError(`unknown argument ${JSON.stringify(arg)}`);
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new UsageError(`${key} needs a value`);
    flags.set(key, value);
  }
  return flags;
}

/**
 * The address forms of the protocol, as grpc-js binds them:
 * `unix:///abs.sock` and `unix:rel.sock` as they are, `tcp://h:p` → `h:p`.
 * @param {string} address
 */
function bindAddress(address) {
  if (address.startsWith('unix:')) {
    if (address.length <= 'unix:'.length) throw new UsageError(`bad address ${JSON.stringify(address)}`);
    return address;
  }
  const hostPort = address.startsWith('tcp://') ? address.slice('tcp://'.length) : address;
  const colon = hostPort.lastIndexOf(':');
  const port = Number(hostPort.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port < 0 || port > 65535 || hostPort.includes('/')) {
    throw new UsageError(`bad address ${JSON.stringify(address)}: expected host:port, tcp://host:port or unix:path`);
  }
  return hostPort;
}

/**
 * Bytes, optionally with a b/k/m/g suffix (1024-based), like the config's sizes.
 * @param {string} text
 * @param {number} fallback used when text is empty
 */
function parseSize(text, fallback) {
  if (text === '') return fallback;
  const match = /^(\d+)\s*([bkmg]?)$/i.exec(text.trim());
  const size = match ? Number(match[1]) * (UNITS[(match[2] || 'b').toLowerCase()]) : NaN;
  if (!Number.isSafeInteger(size) || size <= 0) {
    throw new UsageError(`bad message size ${JSON.stringify(text)}: expected bytes, e.g. 4194304 or 4m`);
  }
  return size;
}

module.exports = { parseOptions, bindAddress, parseSize, wantsHelp, UsageError, USAGE, HELP, DEFAULT_MESSAGE_MAX };
