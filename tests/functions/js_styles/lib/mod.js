exports.handler = (event) => ({ from: 'lib/mod' });
