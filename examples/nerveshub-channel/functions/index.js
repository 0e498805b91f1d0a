'use strict';
/**
 * A Nerves device's side of the NervesHub device channel, on edgefn (see README.md).
 *
 * Each message is a Phoenix channel message, [join_ref, ref, topic, event, payload].
 * `update` is answered by a stream of `fwup_progress` messages, each published as
 * it happens (context.publish), then a `status_update` (the handler's result);
 * `reboot` by `rebooting`. A message that is not a well-formed Phoenix message
 * throws: edgefn publishes its error envelope, and the next message is handled
 * as usual.
 */

const STEPS = Number(process.env.FWUP_STEPS || 4);
const STEP_MS = Number(process.env.FWUP_STEP_MS || 500);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The five parts of a Phoenix message, or a TypeError saying what is wrong with it. */
function parse(message) {
  if (!Array.isArray(message) || message.length !== 5) {
    throw new TypeError('expected a Phoenix message [join_ref, ref, topic, event, payload]');
  }
  const [joinRef, ref, topic, event, payload] = message;
  for (const [name, value] of [['join_ref', joinRef], ['ref', ref]]) {
    if (value !== null && typeof value !== 'string') throw new TypeError(`${name} must be a string or null`);
  }
  if (typeof topic !== 'string' || typeof event !== 'string') throw new TypeError('topic and event must be strings');
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
    throw new TypeError('payload must be an object');
  }
  return { joinRef, ref, topic, event, payload };
}

/** Download and apply the firmware (simulated), reporting progress as it goes. */
async function update(message, context) {
  const reply = (event, payload) => [message.joinRef, message.ref, message.topic, event, payload];
  const { update_available: available, firmware_url: url } = message.payload;
  if (available !== true) return reply('status_update', { status: 'idle' }); // nothing to do
  if (typeof url !== 'string' || url === '') return reply('status_update', { status: 'fwup_error' });
  for (let step = 0; step < STEPS; step++) {
    context.publish(reply('fwup_progress', { value: Math.floor((100 * step) / STEPS) }));
    await sleep(STEP_MS);
  }
  context.publish(reply('fwup_progress', { value: 100 }));
  return reply('status_update', { status: 'idle' }); // applied: waiting for the next update
}

exports.handler = async (event, context) => {
  const message = parse(event);
  switch (message.event) {
    case 'update':
      return update(message, context);
    case 'reboot':
      return [message.joinRef, message.ref, message.topic, 'rebooting', {}];
    case 'phx_reply':
    case 'phx_close':
    case 'phx_error':
      return null; // the hub's own bookkeeping: nothing to answer
    default:
      throw new RangeError(`unsupported event ${JSON.stringify(message.event)} (update, reboot)`);
  }
};
