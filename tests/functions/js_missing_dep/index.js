const missing = require('not-installed-anywhere');

exports.handler = () => missing();
