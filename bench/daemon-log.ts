import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { DevnetOrg } from '../src/devnet/index.js'
import { sleep } from '../src/util/index.js'

/** The JSON lines of a devnet daemon's log (a torn last line left out). */
export async function logLines<T = Record<string, unknown>>(o: DevnetOrg): Promise<T[]> {
  const text = await readFile(join(o.dir, 'daemon.log'), 'utf8')
  const out: T[] = []
  for (const l of text.split('\n')) {
    if (!l.startsWith('{')) continue
    try {
      out.push(JSON.parse(l) as T)
    } catch {
      // a torn last line
    }
  }
  return out
}

/**
 * The first line after the first `from` lines that `match` accepts, waiting
 * up to `timeoutMs` for it: a download's 'study chunks fetched' line comes
 * once its chunks are durable, which may be just after its `study get` ended
 * (src/node/studies.ts).
 */
export async function waitLogLine<T>(o: DevnetOrg, from: number, match: (l: T) => boolean, timeoutMs = 10_000): Promise<T | undefined> {
  const end = performance.now() + timeoutMs
  for (;;) {
    const line = (await logLines<T>(o)).slice(from).find(match)
    if (line !== undefined || performance.now() > end) return line
    await sleep(50)
  }
}
