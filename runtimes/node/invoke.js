'use strict';
/**
 * Running the handler: event and context in, payload out (SPEC §5), and the
 * order calls run in.
 *
 * A handler that returns a thenable is async: its calls run concurrently. Any
 * other handler is sync: calls run one at a time in arrival order, and a
 * callback-style handler (three parameters) holds the line until it calls
 * back, so `(event, context, callback)` code written for Baetyl never sees two
 * events at once.
 *
 * `context.publish(payload, {topic, qos, retain})` sends an output before the
 * result, through the `output` function the call was submitted with (a Talk
 * stream's); on a unary Call there is none and outputs are dropped.
 */

const { AsyncLocalStorage } = require('async_hooks');
const { isUtf8 } = require('buffer');
const {
  Fault,
  MESSAGE_TOO_LARGE,
  UNKNOWN_FAULT,
  UNSERIALIZABLE_RESULT,
  userFault,
} = require('./faults');

const EMPTY = Buffer.alloc(0);

// The first byte of any JSON text (after whitespace): {, [, ", -, 0-9, t, f, n.
// Anything else is bytes, decided without paying for a thrown SyntaxError.
const JSON_START = new Uint8Array(256);
for (const ch of '{["-0123456789tfn') JSON_START[ch.charCodeAt(0)] = 1;

/**
 * The event of a payload: empty → `{}`, JSON → its value (scalars too),
 * anything else (binary, plain text, invalid UTF-8) → the Buffer itself.
 * @param {Buffer} payload
 */
function decodeEvent(payload) {
  let i = 0;
  while (i < payload.length && (payload[i] === 0x20 || payload[i] === 0x0a || payload[i] === 0x0d || payload[i] === 0x09)) i++;
  if (i === payload.length) return payload.length === 0 ? {} : payload;
  if (JSON_START[payload[i]] === 0) return payload;
  const text = payload.toString('utf8');
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return payload;
  }
  // toString() turned invalid UTF-8 into U+FFFD; such bytes are not JSON text.
  if (text.includes('\ufffd') && !isUtf8(payload)) return payload;
  return value;
}

/**
 * The payload of a result: undefined/null → empty; Buffer (any Uint8Array)
 * → its bytes; anything else → JSON (so `""`, `0` and `false` are published).
 * @param {unknown} result
 * @param {number} messageMax
 * @returns {Buffer}
 * @throws {Fault} UnserializableResult, MessageTooLarge
 */
function encodeResult(result, messageMax) {
  let payload;
  if (result === undefined || result === null) return EMPTY;
  if (Buffer.isBuffer(result)) payload = result;
  else if (result instanceof Uint8Array) payload = Buffer.from(result.buffer, result.byteOffset, result.byteLength);
  else payload = Buffer.from(toJson(result));
  if (payload.length > messageMax) {
    throw new Fault(MESSAGE_TOO_LARGE, `result of ${payload.length} bytes is above the limit of ${messageMax} bytes`);
  }
  return payload;
}

function toJson(result) {
  let text;
  try {
    text = JSON.stringify(result);
  } catch (err) {
    throw new Fault(UNSERIALIZABLE_RESULT, `result is not JSON-serializable: ${err.message}`);
  }
  if (text === undefined) {
    throw new Fault(UNSERIALIZABLE_RESULT, `result is not JSON-serializable: a ${typeof result}`);
  }
  return text;
}

/** What is wrong with context.publish's options, or null. */
function outputProblem(options) {
  if (options === undefined || options === null) return null;
  if (typeof options !== 'object') return `options must be an object {topic, qos, retain}, got ${typeof options}`;
  const { topic, qos, retain } = options;
  if (topic !== undefined && topic !== null) {
    if (typeof topic !== 'string') return `topic must be a string, got ${typeof topic}`;
    if (topic === '' || /[+#\0]/.test(topic)) return `topic ${JSON.stringify(topic)} cannot be published to (empty, or holds '+', '#' or NUL)`;
  }
  if (qos !== undefined && qos !== null && qos !== 0 && qos !== 1 && qos !== 2) return `qos must be 0, 1 or 2, got ${qos}`;
  if (retain !== undefined && typeof retain !== 'boolean') return `retain must be a boolean, got ${typeof retain}`;
  return null;
}

/**
 * The handler's context: Baetyl's keys as own properties (so its keys, its JSON
 * and console.log stay Baetyl's) and `publish` on the class. The call it belongs
 * to is a private field. A class, not an object literal with a prototype: V8
 * builds it as fast as a plain object.
 */
class Context {
  #job;

  constructor(job, name) {
    const message = job.message;
    const invokeId = message.FunctionInvokeID;
    this.#job = job;
    this.messageQOS = message.QOS;
    this.messageTopic = message.Topic;
    this.messageRetain = message.Retain === true;
    this.messageTimestamp = Number(message.Timestamp);
    this.functionName = message.FunctionName || name;
    this.functionInvokeID = invokeId;
    this.invokeid = invokeId;
    // A scheduled call only: its nominal fire time, RFC 3339 in the schedule's zone.
    if (message.ScheduledTime) this.scheduledTime = message.ScheduledTime;
  }

  /**
   * Publishes `payload` now, before the call's result (encoded like a result;
   * undefined/null: nothing). `topic` defaults to the rule's publish topic,
   * `qos` to its QoS; the input's QoS caps either. On a unary Call, or once
   * the call has answered, the output is dropped.
   * @param {unknown} payload
   * @param {{topic?: string, qos?: number, retain?: boolean}} [options]
   */
  publish(payload, options) {
    const job = this.#job;
    const problem = outputProblem(options);
    if (problem !== null) throw new TypeError(`context.publish: ${problem}`);
    let bytes;
    try {
      bytes = encodeResult(payload, job.limit);
    } catch (err) {
      throw new TypeError(`context.publish: ${(err.errorMessage || err.message).replace(/^result/, 'the output')}`);
    }
    if (bytes.length === 0 || job.output === undefined || job.settled) return;
    const { topic, qos, retain } = options || {};
    job.output({
      Sequence: job.message.Sequence,
      Output: true,
      Payload: bytes,
      Topic: topic || '',
      OutputQOS: qos === undefined || qos === null ? 0 : qos + 1,
      OutputRetain: retain === true,
    });
  }
}

function isThenable(value) {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof value.then === 'function';
}

/**
 * One call in the runtime: its message, its place in the line and how it ends.
 * @typedef {object} Job
 * @property {object} message the FunctionMessage
 * @property {(err: Fault|null, payload?: Buffer) => void} reply
 * @property {boolean} settled
 * @property {((frame: object) => void) | undefined} output sends an Output frame (Talk only)
 * @property {number} limit the largest output in bytes
 */

/** Runs a handler's calls, in order for sync handlers, concurrently for async ones. */
class Dispatcher {
  /**
   * @param {object} options
   * @param {Function} options.handler the user's function
   * @param {string} options.name the function's name, when a message does not carry it
   * @param {string} options.codedir real path; frames outside it are not the user's
   * @param {number} options.messageMax the largest result in bytes
   * @param {(line: string) => void} options.warn writes a warning to the log
   */
  constructor({ handler, name, codedir, messageMax, warn }) {
    this.handler = handler;
    this.name = name;
    this.codedir = codedir;
    this.messageMax = messageMax;
    this.warn = warn;
    this.callbackStyle = handler.length >= 3;
    this.storage = new AsyncLocalStorage();
    /** @type {Job[]} */
    this.queue = [];
    this.blocker = null; // the callback-style call the line waits for
    this.inflight = 0;
    this.idleWaiters = [];
  }

  /**
   * Queues a call; `reply` is called exactly once, with a Fault or a payload.
   * @param {object} message a FunctionMessage
   * @param {(err: Fault|null, payload?: Buffer) => void} reply
   * @param {(frame: object) => void} [output] sends an output frame; absent: outputs are dropped
   */
  submit(message, reply, output) {
    this.inflight++;
    this.queue.push({ message, reply, settled: false, output, limit: this.messageMax });
    if (this.blocker === null) this.pump();
  }

  /** Resolves once no call is queued or running. */
  idle() {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Fails the call whose code raised an uncaught exception or an unhandled
   * rejection; false when it did not come from a running call.
   * @param {unknown} err
   */
  failCurrent(err) {
    const job = this.storage.getStore();
    if (job === undefined || job.settled) return false;
    this.finish(job, true, err);
    return true;
  }

  pump() {
    while (this.blocker === null && this.queue.length > 0) {
      const job = this.queue.shift();
      this.storage.run(job, () => this.start(job));
    }
  }

  start(job) {
    const event = decodeEvent(job.message.Payload);
    const context = this.context(job);
    // Node's convention: callback(null, value) succeeds, callback(err) fails.
    const callback = (err, value) =>
      err === null || err === undefined ? this.finish(job, false, value) : this.finish(job, true, err);
    // Called detached, as a plain function: a method call would name our
    // class in the user's stack ("at Dispatcher.handler").
    const handler = this.handler;
    let returned;
    let thenable;
    try {
      returned = handler(event, context, callback);
      thenable = isThenable(returned);
      // A thenable's own then() may throw too: that is the user's error as well.
      if (thenable) returned.then((value) => this.finish(job, false, value), (err) => this.finish(job, true, err));
    } catch (err) {
      this.finish(job, true, err);
      return;
    }
    if (thenable) {
      // Answered by the thenable; the next call may start meanwhile.
    } else if (!this.callbackStyle) {
      this.finish(job, false, returned);
    } else if (!job.settled) {
      this.blocker = job;
    }
  }

  context(job) {
    return new Context(job, this.name);
  }

  /**
   * Ends a call once: with the thrown/rejected/passed error when `failed`,
   * else with the result `outcome`. Later answers only warn.
   */
  finish(job, failed, outcome) {
    if (job.settled) {
      this.warn(`${this.name}: a call (invoke id ${job.message.FunctionInvokeID || '-'}) answered twice; the first answer stands`);
      return;
    }
    job.settled = true;
    let fault = null;
    let payload;
    try {
      if (failed) fault = userFault(outcome, this.codedir);
      else payload = encodeResult(outcome, this.messageMax);
    } catch (err) {
      fault = err instanceof Fault ? err : new Fault(UNKNOWN_FAULT, `the runtime failed: ${err && err.stack}`);
    }
    try {
      job.reply(fault, payload);
    } catch (err) {
      // Never into the user's callback: the answer could not be sent, the client is gone.
      this.warn(`${this.name}: an answer could not be sent: ${err && err.message}`);
    }
    this.inflight--;
    if (this.blocker === job) {
      this.blocker = null;
      // Not from inside the user's callback: let it return first.
      setImmediate(() => this.pump());
    }
    if (this.inflight === 0) this.idleWaiters.splice(0).forEach((resolve) => resolve());
  }
}

module.exports = { Dispatcher, decodeEvent, encodeResult };
