import { BlockError, CodecError, asArray, asBytes, asEnum, asU32, asU64Number, decodeCanonical, encodeTrusted, u64 } from '../chain/index.js'
import { errorMessage, sleep, toHex, type Logger } from '../util/index.js'
import type { ChainService } from './chain-service.js'

/** Most blocks in one sync response. */
export const SYNC_MAX_BLOCKS = 64
/** Most bytes of blocks in one sync response. */
export const SYNC_MAX_RESPONSE_BYTES = 32 * 1024 * 1024

/** What sync needs from the network: request/response to one peer. */
export interface SyncNet {
  /** Public keys of connected peers. */
  peers(): Uint8Array[]
  request(peer: Uint8Array, req: Uint8Array, opts: { timeoutMs: number; signal: AbortSignal }): Promise<Uint8Array>
  penalize(peer: Uint8Array, points: number, reason: string): void
}

/** A sync request: `['status']` or `['blocks', from, count]`. */
type SyncRequest = { readonly kind: 'status' } | { readonly kind: 'blocks'; readonly from: number; readonly count: number }

function decodeRequest(bytes: Uint8Array): SyncRequest {
  const a = asArray(decodeCanonical(bytes), 'sync request', undefined, 3)
  const kind = asEnum(a[0], 'sync.kind', ['status', 'blocks'] as const)
  if (kind === 'status') return { kind }
  asArray(a, 'sync blocks request', 3)
  return { kind, from: asU64Number(a[1], 'sync.from'), count: Math.min(asU32(a[2], 'sync.count'), SYNC_MAX_BLOCKS) }
}

/**
 * Block sync: serves final blocks with their certificates to peers, and
 * fetches the ones this node lacks — at start with an empty data dir, after
 * a restart or a partition, or whenever a peer shows a greater height —
 * verifying each certificate and block before committing it.
 */
export class SyncService {
  readonly #chain: ChainService
  readonly #net: SyncNet
  readonly #logger: Logger
  readonly #intervalMs: number
  readonly #abort = new AbortController()
  #loop: Promise<void> | undefined
  #kick: (() => void) | undefined
  #hint = 0

  constructor(opts: { intervalMs?: number }, modules: { chain: ChainService; net: SyncNet; logger: Logger }) {
    this.#chain = modules.chain
    this.#net = modules.net
    this.#logger = modules.logger
    this.#intervalMs = opts.intervalMs ?? 2000
  }

  /** Answers a peer's sync request. Throws CodecError for a malformed one. */
  async serve(req: Uint8Array): Promise<Uint8Array> {
    const r = decodeRequest(req)
    if (r.kind === 'status') return encodeTrusted([u64(this.#chain.head().header.height)])
    const out: Uint8Array[][] = []
    let bytes = 0
    for (let h = r.from; h < r.from + r.count; h++) {
      const e = await this.#chain.syncEntry(h)
      if (e === undefined) break
      bytes += e.block.length + e.cert.length + 16
      if (out.length > 0 && bytes > SYNC_MAX_RESPONSE_BYTES) break
      out.push([e.block, e.cert])
    }
    return encodeTrusted(out)
  }

  /** Notes that a peer showed height `height`; sync soon if we are behind. */
  peerAhead(height: number): void {
    if (height <= this.#chain.head().header.height) return
    this.#hint = Math.max(this.#hint, height)
    this.#kick?.()
  }

  start(): void {
    this.#loop = this.#run()
  }

  async stop(): Promise<void> {
    this.#abort.abort(new Error('sync stopped'))
    this.#kick?.()
    await this.#loop
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal
    while (!signal.aborted) {
      try {
        await this.#round(signal)
      } catch (err) {
        if (signal.aborted) return
        this.#logger.warn('sync round failed', { err: errorMessage(err) })
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.#intervalMs)
        this.#kick = () => {
          clearTimeout(t)
          resolve()
        }
      })
      this.#kick = undefined
    }
  }

  async #status(peer: Uint8Array, signal: AbortSignal): Promise<number> {
    const res = await this.#net.request(peer, encodeTrusted(['status']), { timeoutMs: 2000, signal })
    return asU64Number(asArray(decodeCanonical(res), 'sync status', 1)[0], 'sync.height')
  }

  async #round(signal: AbortSignal): Promise<void> {
    const peers = this.#net.peers()
    if (peers.length === 0) return
    const heights = await Promise.all(
      peers.map((p) =>
        this.#status(p, signal).then(
          (h) => ({ p, h }),
          () => ({ p, h: -1 }),
        ),
      ),
    )
    heights.sort((a, b) => b.h - a.h)
    const best = heights[0]
    if (best === undefined || best.h <= this.#chain.head().header.height) return
    this.#logger.info('syncing', { from: this.#chain.head().header.height + 1, to: best.h, peer: toHex(best.p).slice(0, 16) })
    // Take blocks from the highest peers in turn, so one that stalls or lies does not stop us.
    for (const { p, h } of heights) {
      if (h <= this.#chain.head().header.height) break
      try {
        await this.#fetchFrom(p, h, signal)
      } catch (err) {
        if (signal.aborted) return
        if (err instanceof BlockError || err instanceof CodecError) this.#net.penalize(p, 50, `sync: ${err.message}`)
        this.#logger.warn('sync from peer failed', { peer: toHex(p).slice(0, 16), err: errorMessage(err) })
        await sleep(100, signal).catch(() => {})
      }
    }
  }

  async #fetchFrom(peer: Uint8Array, target: number, signal: AbortSignal): Promise<void> {
    while (!signal.aborted && this.#chain.head().header.height < target) {
      const from = this.#chain.head().header.height + 1
      const count = Math.min(SYNC_MAX_BLOCKS, target - from + 1)
      const res = await this.#net.request(peer, encodeTrusted(['blocks', u64(from), count]), { timeoutMs: 15_000, signal })
      const list = asArray(decodeCanonical(res), 'sync blocks', undefined, SYNC_MAX_BLOCKS)
      if (list.length === 0) return
      for (const [i, item] of list.entries()) {
        const pair = asArray(item, `sync block ${i}`, 2)
        await this.#chain.importBlock(asBytes(pair[0], 'sync block'), asBytes(pair[1], 'sync certificate'))
      }
    }
  }
}
