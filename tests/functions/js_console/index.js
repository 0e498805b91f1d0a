// Writes to stdout at load and in a call: none of it may reach the handshake's stdout.
const { execSync } = require('child_process');

console.log('console.log while loading');
process.stdout.write('process.stdout.write while loading\n');

exports.handler = (event) => {
  console.log('console.log in a call');
  process.stdout.write('process.stdout.write in a call\n');
  // A child process inherits fd 1: it must point at stderr too.
  execSync('echo child process stdout', { stdio: 'inherit' });
  return 'logged';
};
