// Shared helpers of the devnet tests: a real devnet of daemon processes
// (dist/bin/radchain.js, so `npx tsc -p .` must have run), polled through the
// API; nothing here sleeps blindly.
import '../../src/util/polyfill.js'
import type { Test } from 'tap'
import { readFileSync, rmSync } from 'node:fs'
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { ApiClient, DaemonInfo, NodeStatus } from '../../src/api/index.js'
import { clientOf, devnetDown, devnetUp, loadManifest, type DevnetManifest, type DevnetOrg, type DevnetUpOpts } from '../../src/devnet/index.js'
import { DATADIR_FILES } from '../../src/node/index.js'
import { sleep } from '../../src/util/index.js'

/** A block as seen on a node's event stream, with the local arrival time. */
export interface SeenBlock {
  readonly height: number
  readonly hash: string
  readonly time: number
  readonly proposer: string
  readonly txs: readonly string[]
  /** Date.now() when the event arrived. */
  readonly at: number
}

/**
 * Creates a devnet in a fresh temporary dir and registers its teardown first
 * (every daemon stopped, the dir deleted, even when setup fails). When the
 * test failed, the daemons' logs are copied to
 * `<tmpdir>/radchain-devnet-failures/<name>-<time>/` and the path reported.
 */
export async function newDevnet(t: Test, name: string, opts: Omit<DevnetUpOpts, 'dir'> & { gcEveryMs?: number }): Promise<{ dir: string; m: DevnetManifest }> {
  const dir = await mkdtemp(join(tmpdir(), `radchain-devnet-${name}-`))
  if (opts.gcEveryMs !== undefined) {
    // Daemons (this file's, started now or later) run a full garbage
    // collection periodically: what a collection can drop (a timer held
    // only weakly) then fails within seconds instead of once in a while.
    const mod = join(dir, 'gc-pressure.mjs')
    await writeFile(mod, `setInterval(() => globalThis.gc(), ${opts.gcEveryMs}).unref()\n`)
    process.env.RADCHAIN_DAEMON_NODE_ARGS = `--expose-gc --import=${pathToFileURL(mod).href}`
  }
  // Daemons are detached: if this process is killed (a tap timeout) before
  // the teardown runs, kill them on the way out.
  const onExit = (): void => killDaemonsSync(dir)
  const onSignal = (sig: NodeJS.Signals): void => {
    killDaemonsSync(dir)
    process.exit(sig === 'SIGINT' ? 130 : 143)
  }
  process.once('exit', onExit)
  process.once('SIGTERM', onSignal)
  process.once('SIGINT', onSignal)
  t.teardown(async () => {
    process.off('exit', onExit)
    process.off('SIGTERM', onSignal)
    process.off('SIGINT', onSignal)
    let m: DevnetManifest | undefined
    try {
      m = await loadManifest(dir)
    } catch {
      // devnet never created
    }
    if (m !== undefined && !t.passing()) await keepLogs(name, m)
    if (m !== undefined) await devnetDown(dir, true).catch((err: unknown) => console.error('devnetDown failed', err))
    await rm(dir, { recursive: true, force: true })
  })
  try {
    const m = await devnetUp({ dir, ...opts })
    return { dir, m }
  } catch (err) {
    // A devnet that does not come up ends a file that awaits it at its top level before any teardown runs: its
    // daemons' logs are kept here, or nothing would tell why.
    const m = await loadManifest(dir).catch(() => undefined)
    if (m !== undefined) await keepLogs(name, m)
    throw err
  }
}

/** Copies the daemons' logs to `<tmpdir>/radchain-devnet-failures/<name>-<time>/` and says where. */
async function keepLogs(name: string, m: DevnetManifest): Promise<void> {
  const keep = join(tmpdir(), 'radchain-devnet-failures', `${name}-${Date.now()}`)
  await mkdir(keep, { recursive: true })
  for (const o of m.orgs) await cp(join(o.dir, 'daemon.log'), join(keep, `${o.id}.log`)).catch(() => {})
  console.error(`# devnet ${name} failed; daemon logs kept in ${keep}`)
}

/** SIGKILLs every daemon of the devnet in `dir` and deletes it (synchronous: for an exit handler). */
function killDaemonsSync(dir: string): void {
  let orgs: readonly { dir: string }[] = []
  try {
    orgs = (JSON.parse(readFileSync(join(dir, 'devnet.json'), 'utf8')) as DevnetManifest).orgs
  } catch {
    // no devnet yet
  }
  for (const o of orgs) {
    try {
      const info = JSON.parse(readFileSync(join(o.dir, DATADIR_FILES.daemon), 'utf8')) as DaemonInfo
      process.kill(info.pid, 'SIGKILL')
    } catch {
      // not running
    }
  }
  rmSync(dir, { recursive: true, force: true })
}

/** The org with this id. */
export function org(m: DevnetManifest, id: string): DevnetOrg {
  const o = m.orgs.find((x) => x.id === id)
  if (o === undefined) throw new Error(`no ${id} in the devnet`)
  return o
}

/** Polls `pred` every `intervalMs` until it returns a value other than undefined/false; throws after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  pred: () => Promise<T | undefined | false> | T | undefined | false,
  intervalMs = 75,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await pred()
      if (v !== undefined && v !== false) return v
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last === undefined ? '' : ` (last error: ${String(last)})`}`)
    await sleep(intervalMs)
  }
}

/** Status of each org, undefined for one that does not answer. */
export async function statuses(orgs: readonly DevnetOrg[]): Promise<(NodeStatus | undefined)[]> {
  return Promise.all(
    orgs.map(async (o) => {
      try {
        return await (await clientOf(o)).status()
      } catch {
        return undefined
      }
    }),
  )
}

/** Formats statuses for failure messages. */
export function describe(orgs: readonly DevnetOrg[], st: readonly (NodeStatus | undefined)[]): string {
  return orgs
    .map((o, i) => {
      const s = st[i]
      return s === undefined ? `${o.id}=down` : `${o.id}=${s.height}/${s.headHash.slice(0, 8)}/r${s.consensus?.round ?? '-'}`
    })
    .join(' ')
}

/** Waits until every org reports the same height, head hash and state root; returns that status. */
export async function sameHead(orgs: readonly DevnetOrg[], timeoutMs: number, minHeight = 0): Promise<NodeStatus> {
  let last: (NodeStatus | undefined)[] = []
  try {
    return await waitFor(`identical heads on ${orgs.map((o) => o.id).join(',')}`, timeoutMs, async () => {
      last = await statuses(orgs)
      const first = last[0]
      if (first === undefined || first.height < minHeight) return undefined
      return last.every((s) => s !== undefined && s.height === first.height && s.headHash === first.headHash && s.stateRoot === first.stateRoot)
        ? first
        : undefined
    })
  } catch (err) {
    throw new Error(`${(err as Error).message}: ${describe(orgs, last)}`, { cause: err })
  }
}

/** Waits until every org is at least at `height`. */
export async function allAtLeast(orgs: readonly DevnetOrg[], height: number, timeoutMs: number): Promise<NodeStatus[]> {
  let last: (NodeStatus | undefined)[] = []
  try {
    return await waitFor(
      `height ${height} on ${orgs.map((o) => o.id).join(',')}`,
      timeoutMs,
      async () => {
        last = await statuses(orgs)
        return last.every((s) => s !== undefined && s.height >= height) ? (last as NodeStatus[]) : undefined
      },
      50,
    )
  } catch (err) {
    throw new Error(`${(err as Error).message}: ${describe(orgs, last)}`, { cause: err })
  }
}

/** Highest height among the orgs that answer. */
export async function maxHeight(orgs: readonly DevnetOrg[]): Promise<number> {
  return Math.max(-1, ...(await statuses(orgs)).map((s) => s?.height ?? -1))
}

/**
 * Records the final blocks a node announces on its event stream, with their
 * local arrival time, until stop(). A broken stream (the node died) ends the
 * recording and is kept in `error`.
 */
export class BlockWatch {
  readonly blocks: SeenBlock[] = []
  error: unknown
  readonly #ac = new AbortController()
  readonly #done: Promise<void>
  #ready!: () => void
  /** Resolves at the first event (so the subscription is live), or when the stream ends. */
  readonly opened: Promise<void>

  constructor(client: ApiClient) {
    this.opened = new Promise<void>((resolve) => {
      this.#ready = resolve
    })
    this.#done = this.#run(client)
  }

  async #run(client: ApiClient): Promise<void> {
    try {
      const it = client.events(this.#ac.signal)
      let r = await it.next()
      while (r.done !== true) {
        const ev = r.value
        this.#ready()
        if (ev.type === 'block') {
          const d = ev.data as { height: number; hash: string; time: number; proposer: string; txs: string[] }
          this.blocks.push({ height: d.height, hash: d.hash, time: d.time, proposer: d.proposer, txs: d.txs, at: Date.now() })
        }
        r = await it.next()
      }
    } catch (err) {
      if (!this.#ac.signal.aborted) this.error = err
    } finally {
      this.#ready()
    }
  }

  /** Blocks that arrived at or after `since` (Date.now() scale). */
  since(since: number): SeenBlock[] {
    return this.blocks.filter((b) => b.at >= since)
  }

  async stop(): Promise<void> {
    this.#ac.abort()
    await this.#done
  }
}

/** Largest gap in ms between consecutive arrivals in `blocks`. */
export function maxGap(blocks: readonly SeenBlock[]): number {
  let g = 0
  for (let i = 1; i < blocks.length; i++) g = Math.max(g, (blocks[i] as SeenBlock).at - (blocks[i - 1] as SeenBlock).at)
  return g
}

/** Block hash at every height 1..upTo on `o`'s store. */
export async function blockHashes(o: DevnetOrg, upTo: number): Promise<string[]> {
  const c = await clientOf(o)
  const out: string[] = []
  for (let h = 1; h <= upTo; h++) out.push((await c.block(String(h))).hash as string)
  return out
}

/**
 * Asserts every org stores the same block at every height 1..upTo (safety:
 * no two different blocks final at one height). Returns the number of
 * heights compared.
 */
export async function assertSameChain(t: Test, orgs: readonly DevnetOrg[], upTo: number): Promise<void> {
  const all = await Promise.all(orgs.map((o) => blockHashes(o, upTo)))
  const first = all[0] as string[]
  const diverging: string[] = []
  for (let h = 1; h <= upTo; h++) {
    const hashes = all.map((l) => l[h - 1])
    if (hashes.some((x) => x !== first[h - 1])) diverging.push(`${h}: ${orgs.map((o, i) => `${o.id}=${String(hashes[i]).slice(0, 8)}`).join(' ')}`)
  }
  t.same(diverging, [], `all of ${orgs.map((o) => o.id).join(',')} store the same block at every height 1..${upTo}`)
}

/** Signer keys (hex) of the certificate that `o` stores for height `h`. */
export async function certSigners(o: DevnetOrg, h: number): Promise<string[]> {
  const b = await (await clientOf(o)).block(String(h))
  const cert = b.certificate as { signers: string[] } | null
  return cert?.signers ?? []
}

/** Round of the certificate `o` stores for height `h`. */
export async function certRound(o: DevnetOrg, h: number): Promise<number> {
  const b = await (await clientOf(o)).block(String(h))
  return (b.certificate as { round: number } | null)?.round ?? -1
}

/** Lines of `o`'s daemon log, parsed (pino JSON); unparsable lines are skipped. */
export async function logLines(o: DevnetOrg): Promise<Record<string, unknown>[]> {
  const text = await readFile(join(o.dir, 'daemon.log'), 'utf8').catch(() => '')
  const out: Record<string, unknown>[] = []
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    try {
      out.push(JSON.parse(line) as Record<string, unknown>)
    } catch {
      // a partial last line
    }
  }
  return out
}

/** Log lines of level error or fatal (pino levels 50 and 60), and any "SAFETY" or "halted" message. */
export async function badLogLines(o: DevnetOrg): Promise<string[]> {
  return (await logLines(o))
    .filter((l) => (typeof l.level === 'number' && l.level >= 50) || /SAFETY|halted/.test(String(l.msg ?? '') + String(l.err ?? '')))
    .map((l) => `${basename(o.dir)}: ${String(l.msg)} ${JSON.stringify(l)}`.slice(0, 400))
}
