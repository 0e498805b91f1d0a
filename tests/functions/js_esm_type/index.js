// An ES module handler through package.json "type": "module".
import { basename } from 'node:path';

export const handler = (event) => ({ esm: 'type-module', file: basename(new URL(import.meta.url).pathname) });

export function fails() {
  throw new TypeError('esm failure');
}
