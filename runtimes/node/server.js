'use strict';
/**
 * The gRPC face of the runtime: `baetyl.Function` with Call (Baetyl's unary
 * contract) and Talk (the manager's pipelined stream, matched by Sequence),
 * and the graceful drain SIGTERM asks for.
 */

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { Fault, UNAVAILABLE_FAULT } = require('./faults');

const PROTO = path.join(__dirname, '..', '..', 'proto', 'function.proto');
// Room for the message's other fields around a payload of message-max bytes.
const ENVELOPE_ROOM = 64 * 1024;
// Once every answer is written, how long a client may keep its half of a stream open.
const CLOSE_GRACE_MS = 2000;

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

/** Serves one Dispatcher over gRPC. */
class FunctionServer {
  /**
   * @param {object} options
   * @param {import('./invoke').Dispatcher} options.dispatcher
   * @param {number} options.messageMax the largest payload in bytes
   */
  constructor({ dispatcher, messageMax }) {
    this.dispatcher = dispatcher;
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

  call(call, callback) {
    if (this.draining) {
      callback({ code: SHUTTING_DOWN.code, details: SHUTTING_DOWN.details() });
      return;
    }
    const request = call.request;
    this.dispatcher.submit(request, (fault, payload) => {
      if (fault) callback({ code: fault.code, details: fault.details() });
      else callback(null, answer(request, payload));
    });
  }

  talk(call) {
    const stream = { call, pending: 0, ended: false };
    this.talks.add(stream);
    const forget = () => this.talks.delete(stream);
    call.on('data', (request) => this.talkRequest(stream, request));
    // The client closed its half: ours closes once its answers are out.
    call.on('end', () => {
      stream.ended = true;
      if (stream.pending === 0) this.closeTalk(stream);
    });
    call.on('cancelled', forget);
    call.on('error', forget);
  }

  talkRequest(stream, request) {
    if (this.draining) {
      this.talkReply(stream, request, SHUTTING_DOWN, undefined);
      return;
    }
    stream.pending++;
    this.dispatcher.submit(request, (fault, payload) => {
      stream.pending--;
      this.talkReply(stream, request, fault, payload);
      if (stream.ended && stream.pending === 0) this.closeTalk(stream);
    });
  }

  talkReply(stream, request, fault, payload) {
    const reply = answer(request, payload);
    reply.Sequence = request.Sequence;
    if (fault) {
      reply.Code = fault.code;
      reply.Error = fault.details();
    }
    if (stream.call.cancelled || !this.talks.has(stream)) return; // nobody is listening
    stream.call.write(reply);
  }

  closeTalk(stream) {
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
