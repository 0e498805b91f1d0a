'use strict';
/**
 * The fault vocabulary, as the Node runtime speaks it.
 *
 * runtimes/faults.py is the source of truth (errorType ↔ gRPC code); this is
 * its JavaScript mirror for the one process that cannot import Python, and
 * tests/runtimes/node/test_node_faults.py fails when the two drift apart.
 */

const path = require('path');
const { isNativeError } = require('util').types;

// Numeric gRPC status codes.
const OK = 0;
const UNKNOWN = 2;
const DEADLINE_EXCEEDED = 4;
const NOT_FOUND = 5;
const RESOURCE_EXHAUSTED = 8;
const FAILED_PRECONDITION = 9;
const INTERNAL = 13;
const UNAVAILABLE = 14;

const HANDLER_NOT_FOUND = 'Runtime.HandlerNotFound';
const IMPORT_MODULE_ERROR = 'Runtime.ImportModuleError';
const USER_CODE_SYNTAX_ERROR = 'Runtime.UserCodeSyntaxError';
const MESSAGE_TOO_LARGE = 'Runtime.MessageTooLarge';
const UNSERIALIZABLE_RESULT = 'Runtime.UnserializableResult';
const UNAVAILABLE_FAULT = 'Runtime.Unavailable';
const UNKNOWN_FAULT = 'Runtime.Unknown';
const FUNCTION_NOT_FOUND = 'Runtime.FunctionNotFound';

/** The gRPC code each runtime fault travels with; a user's own error travels as UNKNOWN. */
const CODES = Object.freeze({
  'Runtime.HandlerNotFound': FAILED_PRECONDITION,
  'Runtime.ImportModuleError': FAILED_PRECONDITION,
  'Runtime.UserCodeSyntaxError': FAILED_PRECONDITION,
  'Runtime.Timeout': DEADLINE_EXCEEDED,
  'Runtime.InstanceCrashed': INTERNAL,
  'Runtime.MessageTooLarge': RESOURCE_EXHAUSTED,
  'Runtime.UnserializableResult': UNKNOWN,
  'Runtime.OutOfMemory': RESOURCE_EXHAUSTED,
  'Runtime.Unavailable': UNAVAILABLE,
  'Runtime.Unknown': UNKNOWN,
  'Runtime.FunctionNotFound': NOT_FOUND,
  'Runtime.InvalidTopic': FAILED_PRECONDITION,
});

/** A failed call: the user's error or a runtime fault, ready for the wire. */
class Fault extends Error {
  /**
   * @param {string} errorType the user's error name or a `Runtime.*` code
   * @param {string} message
   * @param {string[]} [stack] the user's frames only, paths relative to the codedir
   */
  constructor(errorType, message, stack = []) {
    super(`${errorType}: ${message}`);
    this.errorType = errorType;
    this.errorMessage = message;
    this.errorStack = stack;
    this.code = CODES[errorType] ?? UNKNOWN;
  }

  /** The JSON details string of the gRPC status (SPEC §4). */
  details() {
    return JSON.stringify({
      errorType: this.errorType,
      errorMessage: this.errorMessage,
      errorStack: this.errorStack,
    });
  }
}

// "    at fn (/abs/file.js:5:11)", "    at /abs/file.js:5:11", "    at async fn (file:///abs/x.mjs:1:2)"
const FRAME = /^\s*at (?:(.+?) \()?(.+?):(\d+):(\d+)\)?$/;
// Never blame the runtime's own files, even when a codedir contains them.
const RUNTIME_DIR = __dirname + path.sep;

/**
 * Keeps the frames of `stack` whose file lies under `codedir` (a real path),
 * rewritten relative to it: `at handler (index.js:5:11)`. The runtime's own
 * frames and Node's internals never reach a user.
 * @param {unknown} stack an Error's `stack` string
 * @param {string} codedir
 * @returns {string[]}
 */
function userFrames(stack, codedir) {
  if (typeof stack !== 'string') return [];
  const prefix = codedir.endsWith(path.sep) ? codedir : codedir + path.sep;
  const frames = [];
  for (const line of stack.split('\n')) {
    const match = FRAME.exec(line);
    if (match === null) continue;
    let file = match[2];
    if (file.startsWith('file://')) file = decodeURIComponent(file.slice(7));
    if (!file.startsWith(prefix) || file.startsWith(RUNTIME_DIR)) continue;
    const where = `${file.slice(prefix.length)}:${match[3]}:${match[4]}`;
    frames.push(match[1] ? `at ${match[1]} (${where})` : `at ${where}`);
  }
  return frames;
}

/**
 * The name a user's error travels under: its `name`, or its class when a
 * subclass left `name` as "Error" (`class ValidationError extends Error {}`).
 * @param {Error} err
 */
function errorName(err) {
  const name = typeof err.name === 'string' && err.name !== '' ? err.name : 'Error';
  if (name !== 'Error') return name;
  const ctor = err.constructor && err.constructor.name;
  return typeof ctor === 'string' && ctor !== '' ? ctor : 'Error';
}

/**
 * Converts whatever a handler threw, rejected with or passed to its callback
 * into a Fault: an Error keeps its name, message and user frames; anything
 * else becomes an `Error` whose message is `String(x)`.
 * @param {unknown} thrown
 * @param {string} codedir
 * @returns {Fault}
 */
function userFault(thrown, codedir) {
  if (thrown instanceof Fault) return thrown;
  if (thrown instanceof Error || isNativeError(thrown)) {
    return new Fault(errorName(thrown), String(thrown.message), userFrames(thrown.stack, codedir));
  }
  let message;
  try {
    message = String(thrown);
  } catch {
    message = Object.prototype.toString.call(thrown);
  }
  return new Fault('Error', message, []);
}

module.exports = {
  OK,
  UNKNOWN,
  UNAVAILABLE,
  CODES,
  HANDLER_NOT_FOUND,
  IMPORT_MODULE_ERROR,
  USER_CODE_SYNTAX_ERROR,
  MESSAGE_TOO_LARGE,
  UNSERIALIZABLE_RESULT,
  UNAVAILABLE_FAULT,
  UNKNOWN_FAULT,
  FUNCTION_NOT_FOUND,
  Fault,
  errorName,
  userFault,
  userFrames,
};
