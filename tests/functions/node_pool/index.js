// Node handlers that misbehave one way each, for the pool tests (tests/manager/test_node*.py).
// Every answer names the process that gave it, so a test can tell a replacement from the original.
'use strict';

const fs = require('fs');

// The event as is: "", 0 and false are published, null is not (SPEC §5).
exports.echo = (event) => event;

// Which instance answered.
exports.pid = (event, context, callback) => callback(null, { pid: process.pid });

// Crashes the instance when asked; with {once: FILE}, only the first time (a retry then succeeds).
exports.exits = (event, context, callback) => {
  if (event.once !== undefined) {
    if (fs.existsSync(event.once)) return callback(null, { pid: process.pid, retried: true });
    fs.writeFileSync(event.once, String(process.pid));
  }
  if (event.exit) process.exit(1);
  callback(null, { pid: process.pid });
};

// Never calls back when asked to hang (event.hang: a name for the log line it writes first,
// which the manager relays from stderr).
exports.hangs = (event, context, callback) => {
  if (!event.hang) return callback(null, { pid: process.pid });
  console.log(`hanging ${event.hang}: pid=${process.pid}`);
};

// Never resolves when asked to hang.
exports.hangsAsync = async (event) => {
  if (!event.hang) return { pid: process.pid };
  console.log(`hanging ${event.hang}: pid=${process.pid}`);
  await new Promise(() => {});
};

// Answers after event.ms milliseconds.
exports.slow = (event, context, callback) => {
  setTimeout(() => callback(null, { n: event.n, pid: process.pid }), event.ms);
};

// A string result of event.size characters (published as JSON: two more bytes for the quotes).
exports.big = (event) => 'x'.repeat(event.size);
