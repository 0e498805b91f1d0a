'use strict';
/**
 * A V8 code cache for the runtime's own dependencies (@grpc/grpc-js,
 * @grpc/proto-loader, protobufjs): compiling their ~120 files is about a
 * fifth of a cold start, and the manager starts instances on demand.
 *
 * Node 22+ has this built in (module.enableCompileCache). On Node 20 the
 * files under this folder's node_modules are compiled with vm.Script and
 * cached data, the way v8-compile-cache does it; user code is never touched
 * (the hook is removed before the handler is served). The cache lives in the
 * user's own cache folder, never a shared temp dir: it holds bytecode.
 * Any failure only means a slower start.
 */

const fs = require('fs');
const path = require('path');
const v8 = require('v8');
const vm = require('vm');
const Module = require('module');

const DEPENDENCIES = path.join(__dirname, 'node_modules') + path.sep;
const MAIN = require.main;

/**
 * The cache folder: `$XDG_CACHE_HOME/edgefn` or `~/.cache/edgefn`, per Node
 * version (V8 rejects bytecode of another version anyway); null without a home.
 */
function cacheDir(env) {
  const base = env.XDG_CACHE_HOME || (env.HOME ? path.join(env.HOME, '.cache') : '');
  if (base === '' || !path.isAbsolute(base)) return null;
  return path.join(base, 'edgefn', `node-${process.version}-${process.arch}`);
}

/** A blob of {filename: cachedData} only when this user owns it and no one else may write it. */
function readBlob(file) {
  try {
    const stat = fs.statSync(file);
    if (stat.uid !== process.getuid() || (stat.mode & 0o022) !== 0) return new Map();
    return new Map(Object.entries(v8.deserialize(fs.readFileSync(file))));
  } catch {
    return new Map();
  }
}

/**
 * Runs `load` (which requires the dependencies) with the code cache in place.
 * @template T
 * @param {() => T} load
 * @param {NodeJS.ProcessEnv} env
 * @returns {{ value: T, save: () => void }} save() writes new entries; call it off the hot path
 */
function withCodeCache(load, env) {
  const dir = cacheDir(env);
  if (dir === null) return { value: load(), save: () => {} };
  if (typeof Module.enableCompileCache === 'function') {
    Module.enableCompileCache(dir);
    return { value: load(), save: () => {} };
  }
  const file = path.join(dir, 'dependencies.bin');
  const cached = readBlob(file);
  const fresh = new Map();
  const original = Module.prototype._compile;
  Module.prototype._compile = function compileWithCache(content, filename) {
    if (!filename.startsWith(DEPENDENCIES)) return original.call(this, content, filename);
    return runCached(this, content, filename, cached, fresh);
  };
  let value;
  try {
    value = load();
  } finally {
    Module.prototype._compile = original;
  }
  return { value, save: () => fresh.size > 0 && writeBlob(dir, file, cached, fresh) };
}

/** Module._compile for one dependency file, from its cached bytecode when V8 accepts it. */
function runCached(module, content, filename, cached, fresh) {
  const script = new vm.Script(Module.wrap(content), { filename, cachedData: cached.get(filename) });
  if (!cached.has(filename) || script.cachedDataRejected) fresh.set(filename, script);
  const wrapper = script.runInThisContext({ displayErrors: true });
  const require = (id) => module.require(id);
  require.resolve = (request, options) => Module._resolveFilename(request, module, false, options);
  require.cache = Module._cache;
  require.main = MAIN;
  require.extensions = Module._extensions;
  return wrapper.call(module.exports, module.exports, require, module, filename, path.dirname(filename));
}

function writeBlob(dir, file, cached, fresh) {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const entries = Object.fromEntries(cached);
    for (const [filename, script] of fresh) entries[filename] = script.createCachedData();
    // Atomic: instances starting together each write a whole file, the last rename wins.
    const temp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(temp, v8.serialize(entries), { mode: 0o600 });
    fs.renameSync(temp, file);
  } catch {
    // A read-only home: every start compiles, nothing else changes.
  }
}

module.exports = { withCodeCache, cacheDir };
