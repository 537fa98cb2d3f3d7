// The polyfill comes first: this file is also the entry point of the holder and fetcher processes.
import '../src/util/polyfill.js'
import { fork, type ChildProcess } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Ed25519Signer, sha256 } from '../src/crypto/index.js'
import { P2PNode } from '../src/p2p/index.js'
import { ChainStore, ChunkStore } from '../src/storage/index.js'
import { equalBytes, fromHex, nullLogger, toHex } from '../src/util/index.js'
import { daemonNodeArgs } from '../src/devnet/index.js'
import { chunkTrafficHeap } from '../src/node/heap.js'
import { childCpuMs, cpuMsOf, nextMessage, stopChildren } from './child-ipc.js'

/**
 * The work every chunk transfer does, and nothing of the swarm: the
 * product's pipe (P2PNode: TCP, its secure channel, Yamux, one pipelined stream) between
 * two processes, each with a chunk store on disk. The holder serves chunks
 * with ChunkStore.get without re-hashing them, as a daemon serves them (the
 * reader verifies every chunk, the scrub catches rot at rest); the fetcher keeps `inFlight` requests going, hashes
 * each chunk against its id, stores it (deferred, as the swarm does) and
 * syncs the store at the end. No chain, no placement, no bitfields, no
 * scheduling, one peer. Both processes start with the devnet daemons' Node.js
 * flags and a daemon's heap growth during chunk traffic (src/node/heap.ts). What this reaches bounds any chunk transfer on this machine; the
 * gap to a bare stream is the cost of verifying and storing the bytes.
 */

const HOLDER_FLAG = '--chunk-pipe-holder'
const FETCHER_FLAG = '--chunk-pipe-fetcher'
const PROTOCOL = 'bench-chunk'
const TIMEOUT_MS = 300_000
const HOLDER_SEED = new Uint8Array(32).fill(0x48)
const FETCHER_SEED = new Uint8Array(32).fill(0x46)

interface HolderReady {
  addr: string
  publicKey: string
  ids: string[]
}
interface RunResult {
  seconds: number
  cpuMs: number
}

async function openStore(dir: string): Promise<{ db: ChainStore; store: ChunkStore }> {
  const db = await ChainStore.open(join(dir, 'db'))
  const store = await ChunkStore.open({ dir: join(dir, 'chunks'), quotaBytes: Number.MAX_SAFE_INTEGER, index: db.keyspace('k') })
  return { db, store }
}

// Holder: `count` random chunks of `chunkBytes` in a chunk store, served by index (u32 request).
async function runHolder(count: number, chunkBytes: number, encryption: Encryption | undefined): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-bench-pipe-holder-'))
  const { db, store } = await openStore(dir)
  const ids: Uint8Array[] = []
  for (let i = 0; i < count; i++) {
    const c = randomFillSync(new Uint8Array(chunkBytes))
    const id = sha256(c)
    await store.put(id, c, { defer: true, verified: true })
    ids.push(id)
  }
  await store.flush()
  const node = new P2PNode(
    {
      listen: ['/ip4/127.0.0.1/tcp/0'],
      identitySeed: HOLDER_SEED.slice(),
      networkId: 'bench',
      isAllowed: () => true,
      peersToDial: () => [],
      ...encryptionOpt(encryption),
    },
    { logger: nullLogger() },
  )
  node.handlePipe(PROTOCOL, {
    maxRequestBytes: 4,
    maxResponseBytes: chunkBytes,
    timeoutMs: 30_000,
    concurrency: 4,
    handler: async (_from, req) => {
      const id = ids[new DataView(req.buffer, req.byteOffset, req.byteLength).getUint32(0)]
      const chunk = id === undefined ? undefined : await store.get(id, { verify: false })
      if (chunk === undefined) throw new Error('no such chunk')
      return chunk
    },
  })
  await node.start()
  const stop = (): void => {
    void (async () => {
      await node.stop()
      await store.close()
      await db.close()
      await rm(dir, { recursive: true, force: true })
    })().finally(() => process.exit(0))
  }
  process.on('message', (msg: unknown) => {
    if ((msg as { stop?: boolean }).stop === true) stop()
    if ((msg as { cpu?: boolean }).cpu === true) process.send?.({ cpuMs: cpuMsOf(process.cpuUsage()) })
  })
  process.on('disconnect', stop)
  const ready: HolderReady = { addr: node.addrs[0] as string, publicKey: toHex(new Ed25519Signer(HOLDER_SEED.slice()).publicKey), ids: ids.map(toHex) }
  process.send?.(ready)
}

// Fetcher: on each { run: n }, fetches the first n chunks into a fresh store and answers { result }.
async function runFetcher(): Promise<void> {
  const ready = await new Promise<HolderReady & { inFlight: number; encryption?: Encryption }>((resolve) =>
    process.once('message', (m) => resolve(m as HolderReady & { inFlight: number; encryption?: Encryption })),
  )
  const holderKey = fromHex(ready.publicKey)
  const ids = ready.ids.map(fromHex)
  const node = new P2PNode(
    {
      listen: [],
      identitySeed: FETCHER_SEED.slice(),
      networkId: 'bench',
      isAllowed: () => true,
      peersToDial: () => [{ publicKey: holderKey, addrs: [ready.addr] }],
      ...encryptionOpt(ready.encryption),
    },
    { logger: nullLogger() },
  )
  await node.start()
  const deadline = Date.now() + 10_000
  while (node.peers().length === 0) {
    if (Date.now() > deadline) throw new Error('the fetcher did not connect to the holder')
    await new Promise((r) => setTimeout(r, 20))
  }
  const fetchAll = async (n: number): Promise<RunResult> => {
    const dir = await mkdtemp(join(tmpdir(), 'radchain-bench-pipe-fetcher-'))
    const { db, store } = await openStore(dir)
    try {
      const cpu0 = process.cpuUsage()
      const start = process.hrtime.bigint()
      let next = 0
      await Promise.all(
        Array.from({ length: ready.inFlight }, async () => {
          while (next < n) {
            const i = next++
            const req = new Uint8Array(4)
            new DataView(req.buffer).setUint32(0, i)
            const b = await node.pipeRequestParts(PROTOCOL, holderKey, req, { timeoutMs: 30_000, maxResponseBytes: 64 << 20 }) // as the swarm fetches
            const id = ids[i] as Uint8Array
            if (!equalBytes(sha256(b), id)) throw new Error(`chunk ${i} does not match its id`)
            await store.put(id, b, { defer: true, verified: true })
          }
        }),
      )
      await store.flush()
      const seconds = Number(process.hrtime.bigint() - start) / 1e9
      return { seconds, cpuMs: cpuMsOf(process.cpuUsage(cpu0)) }
    } finally {
      await store.close()
      await db.close()
      await rm(dir, { recursive: true, force: true })
    }
  }
  process.on('message', (msg: unknown) => {
    const n = (msg as { run?: unknown }).run
    if (typeof n === 'number') {
      fetchAll(n).then(
        (result) => process.send?.({ result }),
        (err: unknown) => process.send?.({ error: String(err) }),
      )
    }
    if ((msg as { stop?: boolean }).stop === true) void node.stop().finally(() => process.exit(0))
  })
  process.on('disconnect', () => process.exit(0))
  process.send?.({ connected: true })
}

/** Result of {@link measureChunkPipe}: the median run's throughput (MB = 10^6 bytes) and seconds, the slowest and fastest run, and CPU time per MB of each process over all timed runs. */
export interface ChunkPipeResult {
  mbPerSec: number
  seconds: number
  range: { min: number; max: number }
  cpuMsPerMB: { fetcher: number; holder: number }
}

type Encryption = 'noise' | 'tls'
const encryptionOpt = (e: Encryption | undefined): { encryption?: Encryption[] } => (e === undefined ? {} : { encryption: [e] })
type PipeOpts = {
  chunks: number
  chunkBytes: number
  inFlight: number
  /** The connection's secure channel (default: the product's, P2PNode's DEFAULT_ENCRYPTION). */
  encryption?: Encryption
}

// One holder and one fetcher process: a warm-up of a quarter of the chunks, then `runs` timed transfers of all of them.
async function measurePair(opts: PipeOpts, runs: number): Promise<{ results: RunResult[]; holderMs: number }> {
  const self = fileURLToPath(import.meta.url)
  const spawnChild = (args: string[]): ChildProcess => fork(self, args, { execArgv: daemonNodeArgs(), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const encryption = opts.encryption
  const holder = spawnChild([HOLDER_FLAG, String(opts.chunks), String(opts.chunkBytes), encryption ?? 'default'])
  let fetcher: ChildProcess | undefined
  const timer = setTimeout(() => {
    holder.kill('SIGKILL')
    fetcher?.kill('SIGKILL')
  }, TIMEOUT_MS)
  try {
    const ready = await nextMessage<HolderReady>(holder, 'addr')
    fetcher = spawnChild([FETCHER_FLAG])
    const f = fetcher
    const run = async (n: number): Promise<RunResult> => {
      const r = nextMessage<{ result: RunResult }>(f, 'result')
      f.send({ run: n })
      return (await r).result
    }
    const connected = nextMessage(f, 'connected')
    f.send({ ...ready, inFlight: opts.inFlight, ...(encryption === undefined ? {} : { encryption }) })
    await connected
    await run(Math.max(1, Math.floor(opts.chunks / 4)))
    const results: RunResult[] = []
    let holderMs = 0
    for (let i = 0; i < runs; i++) {
      const h0 = await childCpuMs(holder)
      results.push(await run(opts.chunks))
      holderMs += (await childCpuMs(holder)) - h0
    }
    return { results, holderMs }
  } finally {
    clearTimeout(timer)
    await stopChildren([fetcher, holder])
  }
}

/**
 * Moves `chunks` chunks of `chunkBytes` from a holder process to a fetcher
 * process through the pipe and the chunk stores (see the top of this file),
 * in `pairs` (default 3) fresh pairs of processes, each timing `runs`
 * (default 3) transfers of all of them into fresh stores after a warm-up;
 * the median of all timed runs is reported (fresh pairs for the reason
 * given in libp2p-stream.ts).
 */
export async function measureChunkPipe(opts: PipeOpts & { runs?: number; pairs?: number }): Promise<ChunkPipeResult> {
  const runs = opts.runs ?? 3
  const pairs = opts.pairs ?? 3
  for (const [k, v] of [
    ['chunks', opts.chunks],
    ['chunkBytes', opts.chunkBytes],
    ['inFlight', opts.inFlight],
    ['runs', runs],
    ['pairs', pairs],
  ] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${k} must be a positive integer`)
  }
  const results: RunResult[] = []
  let holderMs = 0
  for (let i = 0; i < pairs; i++) {
    const r = await measurePair(opts, runs)
    results.push(...r.results)
    holderMs += r.holderMs
  }
  const mb = (opts.chunks * opts.chunkBytes) / 1e6
  const sorted = results.map((r) => r.seconds).sort((a, b) => a - b)
  const seconds = sorted[Math.floor(sorted.length / 2)] as number
  const fetcherMs = results.reduce((s, r) => s + r.cpuMs, 0)
  return {
    mbPerSec: mb / seconds,
    seconds,
    range: { min: mb / (sorted[sorted.length - 1] as number), max: mb / (sorted[0] as number) },
    cpuMsPerMB: { fetcher: fetcherMs / (results.length * mb), holder: holderMs / (results.length * mb) },
  }
}

if (process.send !== undefined && (process.argv[2] === HOLDER_FLAG || process.argv[2] === FETCHER_FLAG)) {
  const role = process.argv[2] === HOLDER_FLAG ? 'holder' : 'fetcher'
  // All this process does is chunk traffic: the heap grows as a daemon's does during it.
  if (chunkTrafficHeap.enable(process.execArgv)) chunkTrafficHeap.hold()
  const main =
    role === 'holder'
      ? runHolder(Number(process.argv[3]), Number(process.argv[4]), process.argv[5] === 'tls' || process.argv[5] === 'noise' ? process.argv[5] : undefined)
      : runFetcher()
  main.catch((err: unknown) => {
    process.stderr.write(`chunk pipe ${role} failed: ${String(err)}\n`)
    process.exit(1)
  })
}
