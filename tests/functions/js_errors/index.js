// Each way a handler fails. Line numbers matter: the tests read them in the stacks.
class ValidationError extends Error {}

exports.callbackErr = (event, context, callback) => {
  callback(new TypeError('bad event'));
};

exports.reject = async (event) => {
  throw new RangeError('out of range');
};

exports.throwSync = (event) => {
  return helper(event);
};

function helper(event) {
  throw new TypeError(`no field ${event.field}`);
}

exports.throwNonError = () => {
  throw { not: 'an error' };
};

exports.throwString = () => {
  throw 'plain string';
};

exports.rejectUndefined = () => Promise.reject(undefined);

exports.custom = () => {
  throw new ValidationError('invalid');
};
