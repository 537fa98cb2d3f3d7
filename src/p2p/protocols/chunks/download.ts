import { setMaxListeners } from 'node:events'
import { sha256 } from '../../../crypto/index.js'
import { bytesLength, equalBytes, type Bytes } from '../../../util/index.js'
import { isP2PError } from '../../errors.js'
import { Bitfield, SwarmError } from './messages.js'

/** How often a download asks for the peer list again (it also asks whenever it has none). */
const PEERS_EVERY_MS = 250

/** A peer a download may ask: its organization key, and that key in hex. */
export interface ChunkPeer {
  readonly key: Uint8Array
  readonly id: string
}

/** How a download reaches peers (the node gives p2p requests; tests give fakes). */
export interface ChunkSource {
  /** Which chunks `peer` holds. */
  have(peer: ChunkPeer, signal: AbortSignal): Promise<Bitfield>
  /** Chunk `index` from `peer` (unverified), as one array or consecutive parts. */
  fetch(peer: ChunkPeer, index: number, signal: AbortSignal): Promise<Bytes>
}

/** Where a download stands. */
export interface DownloadProgress {
  readonly total: number
  /** Chunks held (before and during this download). */
  readonly done: number
  /** Bytes fetched by this download. */
  readonly bytes: number
  /** Peers with a request in flight. */
  readonly activePeers: number
  readonly inFlight: number
}

/** Options of {@link downloadChunks}. */
export interface DownloadOpts {
  /** The study's chunk ids, in order (checked against the ledger's content root by the caller). */
  readonly chunkIds: readonly Uint8Array[]
  /** Indices already held and verified. */
  readonly held: Bitfield
  /** Peers to ask now; called again at every refresh, so peers may come and go. */
  peers(): ChunkPeer[]
  readonly source: ChunkSource
  /** Stores a verified chunk (as fetched: one array or its parts); a failure here ends the download. */
  store(index: number, bytes: Bytes): Promise<void>
  /** A peer sent bytes that do not hash to the chunk id: penalize it (it is not asked again in this download). */
  onBadChunk?(peer: ChunkPeer, index: number): void
  /** Largest chunk, for the memory budget. */
  readonly chunkBytes: number
  /** Bytes in flight at most (default 64 MiB): bounds the memory of one download. */
  readonly maxInFlightBytes?: number
  /** Requests in flight per peer: start (default 2) and cap (default 16); grows on success, halves on failure. */
  readonly initialWindow?: number
  readonly maxWindow?: number
  /** Deadline of one chunk request (default 30 s). */
  readonly requestTimeoutMs?: number
  /** How often peers' bitfields are asked again (default 2 s). */
  readonly refreshMs?: number
  /** Give up when no peer holds a missing chunk for this long (default 30 s). */
  readonly stallMs?: number
  /** Copies of one chunk requested at once in the endgame (default 2). */
  readonly endgameCopies?: number
  readonly signal?: AbortSignal
  onProgress?(p: DownloadProgress): void
  /** Random source for tie-breaks (tests pin it). */
  readonly random?: () => number
  /**
   * Among equally rare chunks, the lowest index first rather than at random:
   * for a reader that decrypts and writes the chunks in order as they come.
   */
  readonly inOrder?: boolean
}

/** What a download did. */
export interface DownloadResult {
  /** Chunks fetched and stored by this download. */
  readonly fetched: number
  readonly bytes: number
  /** Chunks and bytes from each peer (hex key). */
  readonly perPeer: Readonly<Record<string, { chunks: number; bytes: number }>>
  /** Requests sent for chunks another peer had already delivered (endgame duplicates, cancelled or wasted). */
  readonly duplicates: number
  /** Most requests in flight at once, and the median time of a successful request (ms). */
  readonly maxInFlight: number
  readonly medianRequestMs: number
}

interface PeerState {
  peer: ChunkPeer
  have: Bitfield | undefined
  window: number
  inFlight: number
  failures: number
  /** Not asked until this time (ms); Infinity = never again in this download. */
  benchedUntil: number
  refreshing: boolean
  lastRefresh: number
  chunks: number
  bytes: number
}

/**
 * Fetches every chunk not in `held` from many peers at once (BitTorrent-style,
 * BEP 3): peers' bitfields say who holds what; each peer gets a window of
 * requests in flight that grows by one per success up to `maxWindow` and
 * halves on a failure; the chunk asked next of a peer is the rarest among
 * those it holds (ties broken at random); every chunk is verified against
 * its id before it is stored, and a peer that sends a wrong one is reported
 * and not asked again; when every missing chunk is in flight, idle peers
 * also ask for the slowest ones (endgame) and the copies still in flight are
 * cancelled when one arrives. Memory: at most `maxInFlightBytes` of chunks in
 * flight. Throws SwarmError SWARM_UNAVAILABLE when no reachable peer holds a
 * missing chunk for `stallMs`; a `store` failure or the signal ends it too.
 * What was stored stays: a later call resumes with a larger `held`.
 */
export async function downloadChunks(opts: DownloadOpts): Promise<DownloadResult> {
  const total = opts.chunkIds.length
  const maxInFlight = Math.max(1, Math.floor((opts.maxInFlightBytes ?? 64 * 1024 * 1024) / Math.max(1, opts.chunkBytes)))
  const initialWindow = opts.initialWindow ?? 2
  const maxWindow = opts.maxWindow ?? 16
  const requestTimeoutMs = opts.requestTimeoutMs ?? 30_000
  const refreshMs = opts.refreshMs ?? 2_000
  const stallMs = opts.stallMs ?? 30_000
  const copies = opts.endgameCopies ?? 2
  const random = opts.random ?? Math.random
  // One inner signal that every request listens to (many at once: no listener-count warning),
  // linked once to the caller's.
  const inner = new AbortController()
  setMaxListeners(0, inner.signal)
  const signal = inner.signal
  const outer = opts.signal
  const onOuterAbort = (): void => inner.abort(outer?.reason)
  if (outer?.aborted === true) onOuterAbort()
  else outer?.addEventListener('abort', onOuterAbort, { once: true })

  const held = new Bitfield(total, opts.held.bytes)
  const missing = new Set<number>()
  for (let i = 0; i < total; i++) if (!held.has(i)) missing.add(i)
  const inFlight = new Map<number, Map<string, AbortController>>()
  const peers = new Map<string, PeerState>()
  let inFlightCount = 0
  /** Verified chunks being stored (no longer missing, not yet counted). */
  let storing = 0
  let peakInFlight = 0
  const requestMs: number[] = []
  let fetched = 0
  let bytes = 0
  let duplicates = 0
  let fatal: unknown
  let lastProgressAt = Date.now()
  let wake: (() => void) | undefined
  const poke = (): void => {
    const w = wake
    wake = undefined
    w?.()
  }
  const onAbort = (): void => poke()
  signal.addEventListener('abort', onAbort)

  const report = (): void =>
    opts.onProgress?.({
      total,
      done: total - missing.size,
      bytes,
      activePeers: [...peers.values()].filter((p) => p.inFlight > 0).length,
      inFlight: inFlightCount,
    })

  // The peer list is asked for again at most every PEERS_EVERY_MS (the loop wakes at every chunk).
  let current = new Map<string, ChunkPeer>()
  let peersAt = -Infinity
  const refresh = (now: number): void => {
    if (now - peersAt >= Math.min(PEERS_EVERY_MS, refreshMs) || current.size === 0) {
      current = new Map(opts.peers().map((p) => [p.id, p]))
      peersAt = now
    }
    for (const id of peers.keys()) if (!current.has(id) && (peers.get(id)?.inFlight ?? 0) === 0) peers.delete(id)
    for (const [id, peer] of current) {
      let st = peers.get(id)
      if (st === undefined) {
        st = { peer, have: undefined, window: initialWindow, inFlight: 0, failures: 0, benchedUntil: 0, refreshing: false, lastRefresh: 0, chunks: 0, bytes: 0 }
        peers.set(id, st)
      }
      if (st.refreshing || st.benchedUntil === Infinity || now - st.lastRefresh < refreshMs) continue
      if (st.have?.complete === true && st.benchedUntil <= now) continue // a full copy stays full
      const s = st
      s.refreshing = true
      s.lastRefresh = now
      const ac = new AbortController()
      const timer = setTimeout(() => ac.abort(), requestTimeoutMs)
      const stop = (): void => ac.abort()
      signal.addEventListener('abort', stop, { once: true })
      opts.source
        .have(s.peer, ac.signal)
        .then(
          (h) => {
            if (h.size !== total) throw new SwarmError('SWARM_BAD_REQUEST', 'bitfield of the wrong size')
            s.have = h
          },
          () => {
            s.have = undefined
          },
        )
        .finally(() => {
          clearTimeout(timer)
          signal.removeEventListener('abort', stop)
          s.refreshing = false
          poke()
        })
    }
  }

  /** Missing chunks not in flight, rarest first, ties at random (or lowest index first, inOrder). */
  const candidates = (): number[] => {
    const ready = [...peers.values()].filter((p) => p.have !== undefined)
    const list: { i: number; avail: number; r: number }[] = []
    for (const i of missing) {
      if (inFlight.has(i)) continue
      let avail = 0
      for (const p of ready) if (p.have?.has(i) === true) avail++
      if (avail > 0) list.push({ i, avail, r: random() })
    }
    list.sort((a, b) => a.avail - b.avail || (opts.inOrder === true ? a.i - b.i : a.r - b.r))
    return list.map((x) => x.i)
  }

  const request = (st: PeerState, index: number): void => {
    const ac = new AbortController()
    let requesters = inFlight.get(index)
    if (requesters === undefined) {
      requesters = new Map()
      inFlight.set(index, requesters)
    }
    requesters.set(st.peer.id, ac)
    st.inFlight++
    inFlightCount++
    peakInFlight = Math.max(peakInFlight, inFlightCount)
    const sentAt = performance.now()
    const timer = setTimeout(() => ac.abort(), requestTimeoutMs)
    const stop = (): void => ac.abort()
    signal.addEventListener('abort', stop, { once: true })
    // The request's slot is given back as soon as its response is here, so the next
    // request goes out while this chunk is verified and stored.
    let released = false
    const release = (): void => {
      if (released) return
      released = true
      clearTimeout(timer)
      signal.removeEventListener('abort', stop)
      const r = inFlight.get(index)
      if (r?.get(st.peer.id) === ac) r.delete(st.peer.id)
      if (r?.size === 0) inFlight.delete(index)
      st.inFlight--
      inFlightCount--
      poke()
    }
    opts.source
      .fetch(st.peer, index, ac.signal)
      .then(
        (b) => {
          if (requestMs.length < 100_000) requestMs.push(performance.now() - sentAt)
          release()
          return onChunk(st, index, b)
        },
        (err: unknown) => onFailure(st, index, err, ac.signal.aborted && !timedOut(ac)),
      )
      .catch((err: unknown) => {
        fatal ??= err
      })
      .finally(release)
    // Cancelled copies are told apart from timeouts by this mark.
    cancelled.set(ac, false)
  }
  const cancelled = new WeakMap<AbortController, boolean>()
  const timedOut = (ac: AbortController): boolean => cancelled.get(ac) !== true

  const onChunk = async (st: PeerState, index: number, b: Bytes): Promise<void> => {
    if (!missing.has(index)) {
      duplicates++
      return
    }
    if (!equalBytes(sha256(b), opts.chunkIds[index] as Uint8Array)) {
      st.benchedUntil = Infinity
      st.have = undefined
      opts.onBadChunk?.(st.peer, index)
      for (const [i, r] of inFlight) {
        const ac = r.get(st.peer.id)
        if (ac !== undefined && i !== index) {
          cancelled.set(ac, true)
          ac.abort()
        }
      }
      return
    }
    missing.delete(index)
    storing++
    // The other copies of this chunk in flight are no longer needed.
    for (const [id, ac] of inFlight.get(index) ?? []) {
      if (id === st.peer.id) continue
      cancelled.set(ac, true)
      ac.abort()
      duplicates++
    }
    try {
      await opts.store(index, b)
    } catch (err) {
      missing.add(index)
      throw err
    } finally {
      storing--
      poke()
    }
    held.set(index)
    fetched++
    const n = bytesLength(b)
    bytes += n
    st.chunks++
    st.bytes += n
    st.failures = 0
    st.window = Math.min(maxWindow, st.window + 1)
    lastProgressAt = Date.now()
    report()
  }

  const onFailure = (st: PeerState, index: number, err: unknown, wasCancelled: boolean): void => {
    if (wasCancelled || signal.aborted) return
    const code = isP2PError(err, 'P2P_REMOTE_ERROR') ? err.remoteCode : undefined
    if (code === 'SWARM_NOT_HELD') {
      st.have?.clear(index)
      return
    }
    if (code === 'SWARM_LEASE_ENDED') {
      // The holders judge the lease in chain time: no point asking the others.
      fatal ??= new SwarmError('SWARM_LEASE_ENDED', 'the holders refused the request: the lease has ended (expired or revoked)')
      return
    }
    if (code === 'SWARM_NOT_ALLOWED' || code === 'SWARM_UNKNOWN_STUDY') {
      st.benchedUntil = Date.now() + 5 * refreshMs
      st.have = undefined
      return
    }
    st.failures++
    st.window = Math.max(1, Math.floor(st.window / 2))
    if (st.failures >= 3) {
      // Rest the peer, then ask its bitfield again before using it.
      st.benchedUntil = Date.now() + 2 * refreshMs
      st.have = undefined
      st.failures = 0
    }
  }

  const schedule = (now: number): void => {
    const order = [...peers.values()].filter((p) => p.have !== undefined && p.benchedUntil <= now)
    if (order.length === 0) return
    // Peers in random order, so no one is always served first.
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1))
      ;[order[i], order[j]] = [order[j] as PeerState, order[i] as PeerState]
    }
    const list = candidates()
    let cursor = 0
    let progress = true
    // Chunks being stored count against the memory budget too.
    while (progress && inFlightCount + storing < maxInFlight) {
      progress = false
      for (const st of order) {
        if (inFlightCount + storing >= maxInFlight) break
        if (st.inFlight >= st.window) continue
        // Next candidate this peer holds.
        let pick: number | undefined
        for (let k = cursor; k < list.length; k++) {
          const i = list[k] as number
          if (!inFlight.has(i) && missing.has(i) && st.have?.has(i) === true) {
            pick = i
            if (k === cursor) cursor++
            break
          }
        }
        if (pick === undefined && allMissingInFlight()) pick = endgamePick(st)
        if (pick === undefined) continue
        request(st, pick)
        progress = true
      }
    }
  }

  const allMissingInFlight = (): boolean => {
    for (const i of missing) if (!inFlight.has(i)) return false
    return true
  }

  /** Endgame: a chunk in flight elsewhere that this peer holds, with the fewest copies requested. */
  const endgamePick = (st: PeerState): number | undefined => {
    let best: number | undefined
    let bestCopies = Infinity
    for (const [i, r] of inFlight) {
      if (!missing.has(i) || r.has(st.peer.id) || r.size >= copies || st.have?.has(i) !== true) continue
      if (r.size < bestCopies) {
        best = i
        bestCopies = r.size
      }
    }
    return best
  }

  try {
    report()
    while (missing.size > 0 || storing > 0) {
      if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new SwarmError('SWARM_UNAVAILABLE', 'download aborted')
      if (fatal !== undefined) throw fatal
      const now = Date.now()
      refresh(now)
      schedule(now)
      const anyRefreshing = [...peers.values()].some((p) => p.refreshing)
      if (missing.size > 0 && inFlightCount === 0 && storing === 0 && !anyRefreshing && now - lastProgressAt > stallMs) {
        throw new SwarmError('SWARM_UNAVAILABLE', `${missing.size} of ${total} chunk(s) are held by no reachable peer (asked ${peers.size})`)
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(poke, Math.min(refreshMs, 250))
        wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
    }
    if (fatal !== undefined) throw fatal
    requestMs.sort((a, b) => a - b)
    return {
      fetched,
      bytes,
      perPeer: Object.fromEntries([...peers.values()].filter((p) => p.chunks > 0).map((p) => [p.peer.id, { chunks: p.chunks, bytes: p.bytes }])),
      duplicates,
      maxInFlight: peakInFlight,
      medianRequestMs: Math.round(requestMs[Math.floor(requestMs.length / 2)] ?? 0),
    }
  } finally {
    outer?.removeEventListener('abort', onOuterAbort)
    signal.removeEventListener('abort', onAbort)
    for (const r of inFlight.values())
      for (const ac of r.values()) {
        cancelled.set(ac, true)
        ac.abort()
      }
  }
}
