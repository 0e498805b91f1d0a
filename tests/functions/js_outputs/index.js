'use strict';
// Handlers that publish before they answer: sync, async and callback styles.

exports.publishes = (event, context) => {
  for (let i = 0; i < (event.n || 2); i++) context.publish({ i });
  context.publish(null); // nothing
  context.publish(Buffer.from('raw'), { topic: event.raw_topic || 'elsewhere/raw', qos: 0, retain: true });
  return { done: context.messageTopic, keys: Object.keys(context).length, json: JSON.parse(JSON.stringify(context)).messageTopic };
};

exports.publishesAsync = async (event, context) => {
  for (let i = 0; i < (event.n || 2); i++) {
    context.publish({ i });
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { done: true };
};

exports.callback = (event, context, callback) => {
  context.publish('first');
  setTimeout(() => {
    context.publish('second');
    callback(null, 'answered');
    context.publish('too late'); // after the answer: dropped
  }, 10);
};

exports.badTopic = (event, context) => {
  try {
    context.publish(1, { topic: 'a/#' });
  } catch (err) {
    return { refused: `${err.name}: ${err.message}` };
  }
  return { refused: null };
};

exports.slow = (event, context, callback) => {
  let i = 0;
  const step = () => {
    if (i >= (event.n || 5)) return callback(null, { done: true });
    context.publish({ i: i++ });
    setTimeout(step, (event.every || 0.2) * 1000);
  };
  step();
};
