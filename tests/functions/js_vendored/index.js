// require() finds the function's own vendored package in its node_modules.
const greet = require('tiny-greet');

exports.handler = (event) => ({ greeting: greet(event.name), version: greet.version });
