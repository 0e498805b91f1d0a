// An ES module handler (.mjs): named exports, async.
import { setTimeout as sleep } from 'node:timers/promises';

export async function handler(event, context) {
  await sleep(1);
  return { esm: 'mjs', functionName: context.functionName, event };
}
