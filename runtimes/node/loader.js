'use strict';
/**
 * Loading a user's handler, `module.attribute`, from the function's codedir,
 * with a typed fault for each way it can fail (like awslambdaric's
 * `_get_handler`): Runtime.ImportModuleError, Runtime.UserCodeSyntaxError,
 * Runtime.HandlerNotFound.
 *
 * Handler names: the module is everything up to the first dot after the last
 * slash, the rest is an attribute path. `index.handler` → `handler` of
 * `index.js`; `lib/mod.handler` → `handler` of `lib/mod.js`; `index.api.get`
 * → `api.get` of `index.js` (AWS Lambda's Node convention). The module file
 * is `<module>.js`, `.mjs` or `.cjs`, tried in that order; `.mjs`, and `.js`
 * under a package.json with `"type": "module"`, load as ES modules.
 */

const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { pathToFileURL } = require('url');
const {
  Fault,
  HANDLER_NOT_FOUND,
  IMPORT_MODULE_ERROR,
  USER_CODE_SYNTAX_ERROR,
  errorName,
  userFrames,
} = require('./faults');

const EXTENSIONS = ['.js', '.mjs', '.cjs'];

/**
 * Loads the handler function named by `spec` from `codedir` (a real path).
 * @param {string} codedir
 * @param {string} spec `module.attribute`
 * @returns {Promise<Function>}
 * @throws {Fault} ImportModuleError, UserCodeSyntaxError or HandlerNotFound
 */
async function loadHandler(codedir, spec) {
  const { moduleName, attributes } = splitSpec(spec);
  const file = findModuleFile(codedir, moduleName);
  const esm = isEsm(file);
  let exported;
  try {
    // The module's own require() resolves from its folder: the codedir's node_modules.
    exported = esm ? await import(pathToFileURL(file).href) : require(file);
  } catch (err) {
    throw loadFault(err, codedir, file, esm);
  }
  const handler = lookup(exported, attributes) ?? (esm ? lookup(exported.default, attributes) : undefined);
  if (typeof handler !== 'function') {
    const found = handler === undefined ? 'nothing' : `a ${typeName(handler)}`;
    const rel = path.relative(codedir, file);
    throw new Fault(HANDLER_NOT_FOUND, `${rel} exports ${found} as '${attributes.join('.')}', not a function`);
  }
  return handler;
}

/** `lib/mod.handler` → module `lib/mod`, attributes `['handler']`. */
function splitSpec(spec) {
  const slash = spec.lastIndexOf('/');
  const dot = spec.indexOf('.', slash + 1);
  const moduleName = dot < 0 ? '' : spec.slice(0, dot);
  const attributes = dot < 0 ? [] : spec.slice(dot + 1).split('.');
  if (moduleName === '' || attributes.some((a) => a === '')) {
    throw new Fault(HANDLER_NOT_FOUND, `handler '${spec}' is not module.attribute (e.g. index.handler)`);
  }
  return { moduleName, attributes };
}

/** The module's file inside codedir; never a path outside it. */
function findModuleFile(codedir, moduleName) {
  const base = path.resolve(codedir, moduleName);
  if (path.isAbsolute(moduleName) || !base.startsWith(codedir + path.sep)) {
    throw new Fault(IMPORT_MODULE_ERROR, `module '${moduleName}' is outside the codedir`);
  }
  for (const ext of EXTENSIONS) {
    const file = base + ext;
    if (fs.statSync(file, { throwIfNoEntry: false })?.isFile()) return file;
  }
  const tried = EXTENSIONS.map((ext) => moduleName + ext).join(', ');
  throw new Fault(IMPORT_MODULE_ERROR, `Cannot find module '${moduleName}' in ${codedir} (tried ${tried})`);
}

/** Node's own rule: .mjs, or .js under a nearest package.json saying "type": "module". */
function isEsm(file) {
  if (file.endsWith('.mjs')) return true;
  if (file.endsWith('.cjs')) return false;
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    let text;
    try {
      text = fs.readFileSync(manifest, 'utf8');
    } catch {
      if (path.dirname(dir) === dir) return false;
      continue;
    }
    try {
      return JSON.parse(text).type === 'module';
    } catch (err) {
      throw new Fault(IMPORT_MODULE_ERROR, `${manifest}: ${err.message}`);
    }
  }
}

function lookup(value, attributes) {
  for (const name of attributes) {
    if (value === null || value === undefined) return undefined;
    value = value[name];
  }
  return value;
}

function typeName(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/** What went wrong while the module loaded, as the fault the user should see. */
function loadFault(err, codedir, file, esm) {
  if (err instanceof SyntaxError) return syntaxFault(err, codedir, file, esm);
  const name = err instanceof Error ? errorName(err) : 'Error';
  let message = err instanceof Error ? String(err.message) : String(err);
  // Node appends an absolute "Require stack:" to the first line; the frames say it better.
  if (err && err.code === 'MODULE_NOT_FOUND') message = message.split('\n')[0];
  const frames = err instanceof Error ? userFrames(err.stack, codedir) : [];
  return new Fault(IMPORT_MODULE_ERROR, `${name}: ${message}`, frames);
}

// A CJS syntax error's stack starts "/abs/file.js:2\n<source line>\n<caret>\n\nSyntaxError: ...".
const SOURCE_LOCATION = /^(?:file:\/\/)?(\/[^\n]*?):(\d+)\n([^\n]*)\n([^\n]*)\n/;

/**
 * Runtime.UserCodeSyntaxError with the file (relative to codedir), line and
 * source excerpt. An ES module's SyntaxError carries no location, so the
 * handler's file is checked with `node --check` (a fault path, never a hot one).
 */
function syntaxFault(err, codedir, file, esm) {
  let where = SOURCE_LOCATION.exec(String(err.stack));
  if (where === null && esm) where = SOURCE_LOCATION.exec(checkSyntax(file));
  if (where === null) return new Fault(USER_CODE_SYNTAX_ERROR, err.message, []);
  const rel = path.relative(codedir, decodeURIComponent(where[1]));
  const excerpt = [where[3], where[4]].filter((line) => line.trim() !== '');
  return new Fault(USER_CODE_SYNTAX_ERROR, `${err.message} (${rel}:${where[2]})`, [`${rel}:${where[2]}`, ...excerpt]);
}

function checkSyntax(file) {
  const result = spawnSync(process.execPath, ['--check', file], { encoding: 'utf8', timeout: 10_000 });
  return result.stderr || '';
}

module.exports = { loadHandler, splitSpec };
