'use strict';
/**
 * The gRPC face of the runtime: `baetyl.Function` with Call (Baetyl's unary
 * contract) and Talk (the manager's pipelined stream, matched by Sequence),
 * and the graceful drain SIGTERM asks for.
 */

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { Fault, FUNCTION_NOT_FOUND, UNAVAILABLE_FAULT } = require('./faults');

const PROTO = path.join(__dirname, '..', '..', 'proto', 'function.proto');
// Room for the message's other fields around a payload of message-max bytes.
const ENVELOPE_ROOM = 64 * 1024;
// Once every answer is written, how long a client may keep its half of a stream open.
const CLOSE_GRACE_MS = 2000;
// Answers that share one Talk frame (Batch, field 16): at most this many, and this
// many payload bytes, so a frame stays far below the gRPC size limit. As the Python runtime.
const BATCH_MAX = 256;
const BATCH_BYTES = 32 * 1024;

const SHUTTING_DOWN = new Fault(UNAVAILABLE_FAULT, 'the runtime is shutting down');

/** The FunctionMessage answering `request`: its fields copied, the result as Payload. */
function answer(request, payload) {
  return {
    ID: request.ID,
    QOS: request.QOS,
    Topic: request.Topic,
    Payload: payload,
    Timestamp: request.Timestamp,
    FunctionName: request.FunctionName,
    FunctionInvokeID: request.FunctionInvokeID,
  };
}

/** The payload bytes of an answer (a failed call's is empty). */
function payloadSize(reply) {
  return reply.Payload === undefined ? 0 : reply.Payload.length;
}

/** Serves one Dispatcher over gRPC. */
class FunctionServer {
  /**
   * @param {object} options
   * @param {import('./invoke').Dispatcher} options.dispatcher
   * @param {number} options.messageMax the largest payload in bytes
   * @param {string} [options.name] the function served: a request naming another is NOT_FOUND
   */
  constructor({ dispatcher, messageMax, name = '' }) {
    this.dispatcher = dispatcher;
    this.name = name;
    this.draining = false;
    this.talks = new Set();
    const limit = messageMax + ENVELOPE_ROOM;
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': limit,
      'grpc.max_send_message_length': limit,
    });
    const definition = protoLoader.loadSync(PROTO, { longs: String, keepCase: true, defaults: true });
    const service = grpc.loadPackageDefinition(definition).baetyl.Function.service;
    this.server.addService(service, {
      Call: (call, callback) => this.call(call, callback),
      Talk: (call) => this.talk(call),
    });
  }

  /**
   * Binds and starts serving; resolves with the bound port (0 for unix sockets).
   * @param {string} address a grpc-js bind address
   * @returns {Promise<number>}
   */
  listen(address) {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) =>
        err ? reject(err) : resolve(port),
      );
    });
  }

  /** Why `request` cannot be run here (draining, or another function's name), or null. */
  refusal(request) {
    if (this.draining) return SHUTTING_DOWN;
    const wanted = request.FunctionName;
    if (this.name && wanted && wanted !== this.name) {
      return new Fault(FUNCTION_NOT_FOUND, `function '${wanted}' not found: this runtime serves '${this.name}'`);
    }
    return null;
  }

  call(call, callback) {
    const request = call.request;
    const refused = this.refusal(request);
    if (refused) {
      callback({ code: refused.code, details: refused.details() });
      return;
    }
    this.dispatcher.submit(request, (fault, payload) => {
      if (fault) callback({ code: fault.code, details: fault.details() });
      else callback(null, answer(request, payload));
    });
  }

  talk(call) {
    // batched: the client sent a Batch frame, so it reads them too; outbox: answers
    // waiting for the next flush (only when batched).
    const stream = { call, pending: 0, ended: false, batched: false, outbox: [], flushing: false, output: null };
    // A call's outputs go out through the same path as answers: in order, ahead of its answer.
    stream.output = (frame) => this.send(stream, frame);
    this.talks.add(stream);
    const forget = () => this.talks.delete(stream);
    call.on('data', (request) => {
      if (request.Batch.length === 0) {
        this.talkRequest(stream, request);
        return;
      }
      stream.batched = true;
      for (const item of request.Batch) this.talkRequest(stream, item);
    });
    // The client closed its half: ours closes once its answers are out.
    call.on('end', () => {
      stream.ended = true;
      if (stream.pending === 0) this.closeTalk(stream);
    });
    call.on('cancelled', forget);
    call.on('error', forget);
  }

  talkRequest(stream, request) {
    const refused = this.refusal(request);
    if (refused) {
      this.talkReply(stream, request, refused, undefined);
      return;
    }
    stream.pending++;
    const reply = (fault, payload) => {
      stream.pending--;
      this.talkReply(stream, request, fault, payload);
      if (stream.ended && stream.pending === 0) this.closeTalk(stream);
    };
    this.dispatcher.submit(request, reply, stream.output);
  }

  talkReply(stream, request, fault, payload) {
    const reply = answer(request, payload);
    reply.Sequence = request.Sequence;
    if (fault) {
      reply.Code = fault.code;
      reply.Error = fault.details();
    }
    this.send(stream, reply);
  }

  /** Writes an answer or an output frame, in the order sent, batched like answers. */
  send(stream, reply) {
    if (stream.call.cancelled || !this.talks.has(stream)) return; // nobody is listening
    if (!stream.batched) {
      stream.call.write(reply);
      return;
    }
    // The answers of one frame's calls (sync handlers answer at once) leave together,
    // once this turn of the event loop is over: a frame costs the manager ~75 µs, whatever it carries.
    stream.outbox.push(reply);
    if (!stream.flushing) {
      stream.flushing = true;
      setImmediate(() => this.flush(stream));
    }
  }

  /** Writes the stream's waiting answers, several to a frame. */
  flush(stream) {
    stream.flushing = false;
    const answers = stream.outbox.splice(0);
    if (stream.call.cancelled || !this.talks.has(stream)) return;
    let start = 0;
    while (start < answers.length) {
      let end = start + 1;
      let size = payloadSize(answers[start]);
      while (end < answers.length && end - start < BATCH_MAX && size + payloadSize(answers[end]) <= BATCH_BYTES) {
        size += payloadSize(answers[end]);
        end++;
      }
      stream.call.write(end - start === 1 ? answers[start] : { Batch: answers.slice(start, end) });
      start = end;
    }
  }

  closeTalk(stream) {
    if (stream.outbox.length > 0) this.flush(stream); // every answer goes out before the end
    if (!this.talks.delete(stream)) return;
    try {
      stream.call.end();
    } catch {
      // Already torn down by the client: nothing to close.
    }
  }

  /**
   * Stops accepting calls, finishes those in flight, then closes every
   * stream and the server. Resolves when the server is shut.
   */
  async drain() {
    this.draining = true;
    const shut = new Promise((resolve) => this.server.tryShutdown(() => resolve()));
    await this.dispatcher.idle();
    for (const stream of [...this.talks]) this.closeTalk(stream);
    let timer;
    const grace = new Promise((resolve) => {
      timer = setTimeout(resolve, CLOSE_GRACE_MS);
    });
    await Promise.race([shut, grace]);
    clearTimeout(timer);
    this.server.forceShutdown();
  }

  /** Closes everything now. */
  close() {
    this.server.forceShutdown();
  }
}

module.exports = { FunctionServer };
