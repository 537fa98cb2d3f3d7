import { EventEmitter, setMaxListeners } from 'node:events'
import type { Identify } from '@libp2p/identify'
import type { Ping } from '@libp2p/ping'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import { Ed25519Signer } from '../crypto/index.js'
import { assertBytes, errorMessage, joinBytes, sleep, toHex, type Logger } from '../util/index.js'
import { scopedSignal } from './signals.js'
import { P2PError } from './errors.js'
import { MAX_FRAME_BYTES } from './frame.js'
import { DialBackoff } from './backoff.js'
import { ChannelSender, OPEN_STREAM_TIMEOUT_MS, receiveChannel, type ViolationReporter } from './channel.js'
import { ORG_KEY_BYTES, assertProtocolPart, orgKeyOf, peerIdFromOrgKey, privateKeyFromSeed, protocolId } from './identity.js'
import { Limiter } from './limiter.js'
import { INBOUND_PER_PEER, exchange, serveRequest, type RequestHandlerOpts } from './reqresp.js'
import { PipeBudget, PipeClient, servePipe } from './pipe.js'
import { BAN_MS, PeerScores, PENALTY } from './scores.js'
import { abortError } from './stream-io.js'

/** Default period of the reconnect loop. */
export const DEFAULT_DIAL_INTERVAL_MS = 1_000
/** Deadline of one dial (TCP connect, handshake, muxer). */
export const DIAL_TIMEOUT_MS = 10_000
/** Default deadline of a request when neither the caller nor a local handler gives one. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000
/** Default response bound when neither the caller nor a local handler gives one. */
export const DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024
/** How long stop() lets in-flight responses and queued messages finish. */
export const STOP_GRACE_MS = 2_000
// Inbound streams per connection and protocol: a channel needs one (two while
// it is reopened); requests may overlap.
const CHANNEL_MAX_INBOUND_STREAMS = 4
const REQUEST_MAX_INBOUND_STREAMS = 64
const REQUEST_MAX_OUTBOUND_STREAMS = 64
/** Requests in flight to one peer on one protocol; more wait in line (within their deadline). */
export const MAX_CONCURRENT_REQUESTS = 32
/** Initial Yamux receive window of each stream (2 MiB: a chunk response fits). */
export const STREAM_WINDOW_BYTES = 2 * 1024 * 1024

// A connection's negotiated secure channel by its short name ('/tls/1.0.0' -> 'tls', '/noise' -> 'noise').
function channelName(protocol: string | undefined): string {
  if (protocol === undefined) return 'unknown'
  if (protocol.startsWith('/tls/')) return 'tls'
  if (protocol === '/noise') return 'noise'
  return protocol
}

/**
 * The secure channels a node offers and accepts, preferred first (see
 * P2PInit.encryption): Noise. TLS 1.3 runs over radchain's own adapter
 * between the transport and TLSSocket (src/p2p/tls.ts; the library's paused
 * reading while a write waited for drain, and a tx flood took 43.6 s to be
 * final against 17.5 s over Noise). Measured on one day it was cheaper for
 * chunk traffic (3 shaped holders 0.85 of their links against Noise's 0.77);
 * measured again with the adapter on a slower day, it was not (bare stream
 * 6.6-7.1 against 3.7-4.9 ms of CPU per MB, the same with the library's
 * adapter; 3 shaped holders 0.64 against 0.67): Noise stays the default.
 */
export const DEFAULT_ENCRYPTION: readonly ('noise' | 'tls')[] = ['noise']

/** Configuration of a P2PNode. */
export interface P2PInit {
  /** Multiaddrs to listen on, e.g. ['/ip4/127.0.0.1/tcp/0']. */
  listen: string[]
  /** 32-byte Ed25519 seed of the organization: the libp2p identity is the organization's signing key. */
  identitySeed: Uint8Array
  /** Network name (e.g. the chain id), part of every protocol id: /radchain/<networkId>/<name>/1. */
  networkId: string
  /** Connection gate: whether the peer with this raw 32-byte Ed25519 key is an admitted organization. */
  isAllowed(publicKey: Uint8Array): boolean
  /** Organizations to keep connected (full mesh); read again at every tick of the dial loop. */
  peersToDial(): { publicKey: Uint8Array; addrs: string[] }[]
  /** Period of the reconnect loop (default 1000 ms); a failing peer backs off, doubling up to 30 s, reset on success. */
  dialIntervalMs?: number
  /** How long a peer whose score fell to -100 is refused (default 60 s; shorter in tests). */
  banMs?: number
  /** Points a score recovers per second (default RECOVERY_PER_SECOND; 0 in tests that read exact scores). */
  scoreRecoveryPerSecond?: number
  /** Deadline for finishing a channel frame once begun (default 10 s; shorter in tests). */
  frameTimeoutMs?: number
  /**
   * Connection encryption offered, in order of preference when dialing, and
   * accepted when listening (default DEFAULT_ENCRYPTION, Noise). Both bind
   * the libp2p identity to the connection.
   */
  encryption?: ('noise' | 'tls')[]
}

/** A messaging channel: one-way, ordered, best-effort messages to and from each peer. */
export interface ChannelOpts {
  /** Largest message accepted; a longer frame penalizes the sender and closes its stream. */
  maxMessageBytes: number
  /** Called synchronously for each message, in the sender's order. Exceptions are logged and ignored. */
  onMessage(from: Uint8Array, data: Uint8Array): void
}

/** Options of one outbound request. */
export interface RequestOpts {
  signal?: AbortSignal
  /** Default: the local handler's timeoutMs for this name, else DEFAULT_REQUEST_TIMEOUT_MS. */
  timeoutMs?: number
  /** Default: the local handler's maxResponseBytes for this name, else DEFAULT_MAX_RESPONSE_BYTES. */
  maxResponseBytes?: number
  /**
   * `maxResponseBytes` is the protocol's bound for this request (the size of
   * the answer follows from what was asked), not a local limit: a larger
   * answer breaks the protocol, fails with P2P_TOO_LARGE (penalize) and costs
   * the peer PENALTY.FRAME_TOO_LARGE. request() only; default false.
   */
  penalizeOversize?: boolean
}

/** A connected peer. */
export interface PeerInfo {
  /** Raw 32-byte Ed25519 public key (the organization's key). */
  publicKey: Uint8Array
  /** libp2p peer id string. */
  peerId: string
  /** Remote multiaddr of one of its connections. */
  addr: string
  /** The secure channel of that connection: 'tls', 'noise', or the protocol id as negotiated. */
  encryption: string
}

/** Events of a P2PNode; the argument is the peer's raw public key. */
export interface P2PEvents {
  'peer:connect': [publicKey: Uint8Array]
  'peer:disconnect': [publicKey: Uint8Array]
}

/** Registration request/response protocol, as given to handle(). */
export type HandleOpts = RequestHandlerOpts

interface ChannelEntry {
  protocol: string
  opts: ChannelOpts
  senders: Map<string, ChannelSender>
}

interface HandlerEntry {
  protocol: string
  opts: HandleOpts
  /** Pipelined (one long-lived stream per peer): handlers run at once, at most. */
  pipe?: number
}

type Services = { identify: Identify; ping: Ping }
type State = 'new' | 'starting' | 'running' | 'stopping' | 'stopped'

/**
 * The network layer of one organization: a libp2p node (TCP, Noise, Yamux,
 * identify, ping) whose connections are gated on the remote organization's
 * key, kept in a full mesh with the peers the caller names, and carrying
 * radchain's messaging channels and request/response protocols. It knows no
 * consensus rule: admission (`isAllowed`) and message validation are the
 * caller's, who reports misbehaviour through penalize().
 */
export class P2PNode extends EventEmitter<P2PEvents> {
  readonly #init: P2PInit
  readonly #log: Logger
  readonly #publicKey: Uint8Array
  readonly #selfHex: string
  readonly #scores: PeerScores
  readonly #backoff: DialBackoff
  readonly #channels = new Map<string, ChannelEntry>()
  readonly #handlers = new Map<string, HandlerEntry>()
  /** Pipelined clients by `<peer key hex>/<name>`. */
  readonly #pipes = new Map<string, PipeClient>()
  readonly #dialing = new Set<string>()
  readonly #inflight = new Set<Promise<void>>()
  /** Inbound requests' slots, per peer and protocol (RequestHandlerOpts.perPeer). */
  readonly #inboundSlots = new Map<string, Limiter>()
  /** Inbound pipes' shared budget, per peer and protocol (see PipeBudget). */
  readonly #pipeBudgets = new Map<string, PipeBudget>()
  readonly #limiters = new Map<string, Limiter>()
  readonly #abort = new AbortController()
  #blocked = new Set<string>()
  #libp2p: Libp2p<Services> | undefined
  #timer: ReturnType<typeof setInterval> | undefined
  #state: State = 'new'
  #starting: Promise<void> | undefined

  constructor(init: P2PInit, modules: { logger: Logger }) {
    super()
    assertBytes(init.identitySeed, ORG_KEY_BYTES, 'identity seed')
    // Every request in flight listens to the node's stop signal: many at once is normal.
    setMaxListeners(0, this.#abort.signal)
    assertProtocolPart(init.networkId, 'network id')
    if (!Array.isArray(init.listen)) throw new P2PError('P2P_INVALID_ARGUMENT', 'listen must be an array of multiaddrs')
    for (const a of init.listen) multiaddr(a)
    const enc = init.encryption ?? DEFAULT_ENCRYPTION
    if (enc.length === 0 || enc.some((e) => e !== 'noise' && e !== 'tls'))
      throw new P2PError('P2P_INVALID_ARGUMENT', "encryption must list 'noise' and/or 'tls'")
    this.#init = { ...init, identitySeed: new Uint8Array(init.identitySeed) }
    this.#log = modules.logger.child({ module: 'p2p' })
    this.#publicKey = new Ed25519Signer(init.identitySeed).publicKey
    this.#selfHex = toHex(this.#publicKey)
    this.#scores = new PeerScores({
      banMs: init.banMs ?? BAN_MS,
      ...(init.scoreRecoveryPerSecond === undefined ? {} : { recoveryPerSecond: init.scoreRecoveryPerSecond }),
    })
    this.#backoff = new DialBackoff({ baseMs: init.dialIntervalMs ?? DEFAULT_DIAL_INTERVAL_MS })
  }

  /** This organization's raw 32-byte Ed25519 public key. */
  get publicKey(): Uint8Array {
    return this.#publicKey
  }

  /** libp2p peer id string of this node. */
  get peerId(): string {
    return peerIdFromOrgKey(this.#publicKey).toString()
  }

  /** Actual listen multiaddrs, each ending in /p2p/<peerId> (empty until started). */
  get addrs(): string[] {
    return this.#libp2p?.getMultiaddrs().map((m) => m.toString()) ?? []
  }

  /** Starts listening, serving the registered protocols and dialing peersToDial(). Callable once. */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new P2PError('P2P_INVALID_ARGUMENT', `cannot start a node that is ${this.#state}`)
    this.#state = 'starting'
    this.#starting = this.#create()
    try {
      await this.#starting
    } catch (err) {
      this.#state = 'stopped'
      await Promise.resolve(this.#libp2p?.stop()).catch(() => {})
      throw err
    }
    if (this.#state !== 'starting') {
      // stop() was called meanwhile
      await this.#libp2p?.stop()
      return
    }
    this.#state = 'running'
    this.#log.info('p2p node started', { peerId: this.peerId, addrs: this.addrs })
    this.#timer = setInterval(() => this.#tick(), this.#init.dialIntervalMs ?? DEFAULT_DIAL_INTERVAL_MS)
    this.#timer.unref()
    this.#tick()
  }

  async #create(): Promise<void> {
    const privateKey = await privateKeyFromSeed(this.#init.identitySeed)
    // libp2p holds the key from here on; drop our copy of the seed.
    this.#init.identitySeed.fill(0)
    const gate = (peerId: PeerId): boolean => {
      const why = this.#refusal(peerId)
      if (why !== undefined) this.#log.debug('connection refused', { peer: peerId.toString(), why })
      return why !== undefined
    }
    // The libp2p stack loads when a node is created, not when this module is
    // imported: commands that never open the network start several times faster.
    const [{ createLibp2p }, { tcp }, { noise }, { tlsEncrypter }, { yamux }, { identify }, { ping }] = await Promise.all([
      import('libp2p'),
      import('@libp2p/tcp'),
      import('@chainsafe/libp2p-noise'),
      import('./tls.js'),
      import('@chainsafe/libp2p-yamux'),
      import('@libp2p/identify'),
      import('@libp2p/ping'),
    ])
    const libp2p = await createLibp2p<Services>({
      privateKey,
      addresses: { listen: this.#init.listen },
      transports: [tcp()],
      connectionEncrypters: (this.#init.encryption ?? DEFAULT_ENCRYPTION).map((e) => (e === 'tls' ? tlsEncrypter() : noise())),
      // A fresh stream may receive a whole 1 MiB chunk (and its frame) without waiting for
      // window updates: the default 256 KiB window costs several round trips per chunk.
      streamMuxers: [yamux({ streamOptions: { initialStreamWindowSize: STREAM_WINDOW_BYTES, maxStreamWindowSize: 16 * 1024 * 1024 } })],
      connectionGater: {
        denyDialPeer: gate,
        denyOutboundConnection: gate,
        // The remote key is only proven once the handshake is done: gate there.
        denyInboundEncryptedConnection: gate,
        denyOutboundEncryptedConnection: gate,
      },
      connectionManager: {
        maxConnections: 512,
        dialTimeout: DIAL_TIMEOUT_MS,
        // Organizations on one host (a devnet) reconnect together after a partition.
        inboundConnectionThreshold: 64,
        maxIncomingPendingConnections: 64,
      },
      services: { identify: identify(), ping: ping() },
      // libp2p pings every connection every 10 s and cuts it when an answer takes longer than an adaptive
      // timeout of at least 5 s. On a slow link, a ping queues behind the data in flight (a 33 MiB sync
      // answer takes 27 s at 10 Mbit/s): measured on a link shaped to 200 Mbit/s, one bulk stream had its
      // connection cut mid-transfer. At least 30 s: a dead link is still found, a busy one is not cut.
      connectionMonitor: { pingTimeout: { minTimeout: 30_000 } },
      start: false,
    })
    this.#libp2p = libp2p
    libp2p.addEventListener('peer:connect', (evt) => this.#onPeerEvent('peer:connect', evt.detail))
    libp2p.addEventListener('peer:disconnect', (evt) => this.#onPeerEvent('peer:disconnect', evt.detail))
    for (const [name, ch] of this.#channels) await this.#registerChannel(name, ch)
    for (const [name, h] of this.#handlers) await this.#registerHandler(name, h)
    await libp2p.start()
  }

  /**
   * Stops the node: no new inbound streams, in-flight responses and queued
   * messages get up to STOP_GRACE_MS, then every connection closes.
   */
  async stop(): Promise<void> {
    for (const c of this.#pipes.values()) c.close()
    this.#pipes.clear()
    if (this.#state === 'starting') {
      this.#state = 'stopped'
      await this.#starting?.catch(() => {})
      await this.#libp2p?.stop()
      return
    }
    const libp2p = this.#libp2p
    if (this.#state !== 'running' || libp2p === undefined) {
      this.#state = 'stopped'
      return
    }
    this.#state = 'stopping'
    if (this.#timer !== undefined) clearInterval(this.#timer)
    const protocols = [...this.#channels.values(), ...this.#handlers.values()].map((e) => e.protocol)
    await Promise.allSettled(protocols.map((p) => libp2p.unhandle(p)))
    const senders = [...this.#channels.values()].flatMap((ch) => [...ch.senders.values()])
    const grace = new AbortController()
    await Promise.race([
      Promise.allSettled([...this.#inflight, ...senders.map((s) => s.close(STOP_GRACE_MS))]),
      sleep(STOP_GRACE_MS, grace.signal).catch(() => {}),
    ])
    grace.abort()
    this.#abort.abort(new P2PError('P2P_ABORTED', 'node stopping'))
    for (const ch of this.#channels.values()) ch.senders.clear()
    await libp2p.stop()
    this.#state = 'stopped'
    this.#log.info('p2p node stopped')
  }

  /**
   * Registers messaging channel `name` (protocol /radchain/<networkId>/<name>/1).
   * Call before start(); a later call registers it on the running node.
   */
  channel(name: string, opts: ChannelOpts): void {
    const protocol = this.#newProtocol(name)
    if (!Number.isInteger(opts.maxMessageBytes) || opts.maxMessageBytes < 0 || opts.maxMessageBytes > MAX_FRAME_BYTES) {
      throw new P2PError('P2P_INVALID_ARGUMENT', 'maxMessageBytes must be an integer in [0, 2^32-1]')
    }
    const entry: ChannelEntry = { protocol, opts, senders: new Map() }
    this.#channels.set(name, entry)
    if (this.#state === 'running')
      void this.#registerChannel(name, entry).catch((err: unknown) => this.#log.error('channel registration failed', { name, error: errorMessage(err) }))
  }

  /**
   * Registers request/response protocol `name` (/radchain/<networkId>/<name>/1).
   * Call before start(); a later call registers it on the running node.
   */
  handle(name: string, opts: HandleOpts): void {
    const protocol = this.#newProtocol(name)
    for (const k of ['maxRequestBytes', 'maxResponseBytes'] as const) {
      if (!Number.isInteger(opts[k]) || opts[k] < 0 || opts[k] >= MAX_FRAME_BYTES)
        throw new P2PError('P2P_INVALID_ARGUMENT', `${k} must be an integer in [0, 2^32-2]`)
    }
    if (!(opts.timeoutMs > 0)) throw new P2PError('P2P_INVALID_ARGUMENT', 'timeoutMs must be > 0')
    const entry: HandlerEntry = { protocol, opts }
    this.#handlers.set(name, entry)
    if (this.#state === 'running')
      void this.#registerHandler(name, entry).catch((err: unknown) => this.#log.error('handler registration failed', { name, error: errorMessage(err) }))
  }

  /**
   * Registers pipelined request/response protocol `name`: requests from one
   * peer share one long-lived stream and are answered in completion order,
   * at most `concurrency` handlers at once (see pipe.ts). For bulk transfers.
   */
  handlePipe(name: string, opts: HandleOpts & { concurrency: number }): void {
    const protocol = this.#newProtocol(name)
    for (const k of ['maxRequestBytes', 'maxResponseBytes'] as const) {
      if (!Number.isInteger(opts[k]) || opts[k] < 0 || opts[k] >= MAX_FRAME_BYTES - 8)
        throw new P2PError('P2P_INVALID_ARGUMENT', `${k} must be an integer in [0, 2^32-10]`)
    }
    if (!(opts.timeoutMs > 0) || !Number.isInteger(opts.concurrency) || opts.concurrency < 1)
      throw new P2PError('P2P_INVALID_ARGUMENT', 'timeoutMs must be > 0 and concurrency a positive integer')
    const entry: HandlerEntry = { protocol, opts, pipe: opts.concurrency }
    this.#handlers.set(name, entry)
    if (this.#state === 'running')
      void this.#registerHandler(name, entry).catch((err: unknown) => this.#log.error('handler registration failed', { name, error: errorMessage(err) }))
  }

  /**
   * Sends `req` on pipelined protocol `name` to a connected peer (one stream
   * per peer, opened on first use) and returns the answer; errors as request().
   */
  async pipeRequest(name: string, peerPublicKey: Uint8Array, req: Uint8Array, opts: RequestOpts = {}): Promise<Uint8Array> {
    return joinBytes(await this.pipeRequestParts(name, peerPublicKey, req, opts))
  }

  /**
   * As pipeRequest(), with the answer as consecutive views of the received
   * buffers: a large answer (a chunk) is not copied into one array first.
   */
  async pipeRequestParts(name: string, peerPublicKey: Uint8Array, req: Uint8Array, opts: RequestOpts = {}): Promise<Uint8Array[]> {
    if (this.#state !== 'running') throw new P2PError('P2P_NOT_STARTED', 'p2p node is not running')
    const peerId = peerIdFromOrgKey(peerPublicKey)
    if (this.#refusal(peerId) !== undefined || !this.#isConnected(peerId)) throw new P2PError('P2P_NO_PEER', 'peer is not connected')
    const local = this.#handlers.get(name)?.opts
    const key = `${toHex(peerPublicKey)}/${name}`
    let client = this.#pipes.get(key)
    if (client === undefined) {
      const protocol = protocolId(this.#init.networkId, name)
      client = new PipeClient((signal) => this.#openStream(peerId, protocol, signal), {
        maxResponseBytes: opts.maxResponseBytes ?? local?.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES,
      })
      this.#pipes.set(key, client)
    }
    const { signal, dispose } = scopedSignal(opts.timeoutMs ?? local?.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS, opts.signal, this.#abort.signal)
    try {
      return await client.requestParts(req, signal)
    } catch (err) {
      if (err instanceof P2PError && err.code === 'P2P_MALFORMED' && err.penalize) this.penalize(peerPublicKey, PENALTY.MALFORMED, `malformed ${name} response`)
      throw err
    } finally {
      dispose()
    }
  }

  /**
   * Queues `data` on channel `name` to every connected, admitted peer.
   * Returns how many peers it was queued for. Throws P2P_TOO_LARGE when
   * `data` exceeds the channel's maxMessageBytes.
   */
  broadcast(name: string, data: Uint8Array): number {
    const ch = this.#channelFor(name, data)
    if (ch === undefined) return 0
    let n = 0
    for (const peer of this.#connectedPeers()) {
      if (this.#refusal(peer.peerId) !== undefined) continue
      if (this.#senderFor(ch, peer.peerId, peer.hex).enqueue(data)) n++
    }
    return n
  }

  /**
   * Queues `data` on channel `name` to one peer. False when the peer is not
   * connected or not admitted, or its sender is backing off.
   */
  send(name: string, peerPublicKey: Uint8Array, data: Uint8Array): boolean {
    const ch = this.#channelFor(name, data)
    if (ch === undefined) return false
    const peerId = peerIdFromOrgKey(peerPublicKey)
    if (this.#refusal(peerId) !== undefined || !this.#isConnected(peerId)) return false
    return this.#senderFor(ch, peerId, toHex(peerPublicKey)).enqueue(data)
  }

  /**
   * Sends request `req` on protocol `name` to a connected peer and returns
   * the response body; see exchange() for the error codes, plus P2P_NO_PEER,
   * P2P_REFUSED (protocol not served) and P2P_NOT_STARTED.
   */
  async request(name: string, peerPublicKey: Uint8Array, req: Uint8Array, opts: RequestOpts = {}): Promise<Uint8Array> {
    const protocol = protocolId(this.#init.networkId, name)
    assertBytes(req, undefined, 'request')
    if (req.length > MAX_FRAME_BYTES) throw new P2PError('P2P_TOO_LARGE', 'request exceeds 2^32-1 bytes')
    if (this.#state !== 'running') throw new P2PError('P2P_NOT_STARTED', 'p2p node is not running')
    const peerId = peerIdFromOrgKey(peerPublicKey)
    if (this.#refusal(peerId) !== undefined || !this.#isConnected(peerId)) throw new P2PError('P2P_NO_PEER', 'peer is not connected')
    const local = this.#handlers.get(name)?.opts
    const maxResponseBytes = opts.maxResponseBytes ?? local?.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES
    const { signal, dispose } = scopedSignal(opts.timeoutMs ?? local?.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS, opts.signal, this.#abort.signal)
    const limiterKey = `${toHex(peerPublicKey)}/${name}`
    let limiter = this.#limiters.get(limiterKey)
    if (limiter === undefined) {
      limiter = new Limiter(MAX_CONCURRENT_REQUESTS)
      this.#limiters.set(limiterKey, limiter)
    }
    await limiter.acquire(signal)
    try {
      const stream = await this.#openStream(peerId, protocol, signal)
      return await exchange(stream, req, maxResponseBytes, signal, { penalizeOversize: opts.penalizeOversize === true })
    } catch (err) {
      if (err instanceof P2PError && err.code === 'P2P_MALFORMED' && err.penalize) this.penalize(peerPublicKey, PENALTY.MALFORMED, `malformed ${name} response`)
      if (err instanceof P2PError && err.code === 'P2P_TOO_LARGE' && err.penalize)
        this.penalize(peerPublicKey, PENALTY.FRAME_TOO_LARGE, `oversized ${name} response`)
      throw err
    } finally {
      dispose()
      limiter.release()
      if (limiter.idle) this.#limiters.delete(limiterKey)
    }
  }

  /**
   * Lowers a peer's score by `points` (>= 0). At -100 or below the peer is
   * disconnected and refused for 60 s; it may then come back with score -50.
   * Logged at warn with `reason` (never put message contents in it).
   */
  penalize(peerPublicKey: Uint8Array, points: number, reason: string): void {
    const peerId = peerIdFromOrgKey(peerPublicKey)
    const hex = toHex(peerPublicKey)
    const r = this.#scores.penalize(hex, points)
    this.#log.warn('peer penalized', { peer: peerId.toString(), points, score: r.score, reason })
    if (r.banned) {
      this.#log.warn('peer banned', { peer: peerId.toString(), forMs: this.#scores.banRemainingMs(hex) })
      this.#disconnect(peerId, 'banned')
    }
  }

  /** A peer's current score (0 when never penalized). */
  score(peerPublicKey: Uint8Array): number {
    return this.#scores.score(toHex(peerPublicKey))
  }

  /** Closes connections of peers that are no longer admitted (call after the authority set changes). */
  recheck(): void {
    const libp2p = this.#libp2p
    if (libp2p === undefined) return
    for (const peerId of new Set(libp2p.getConnections().map((c) => c.remotePeer))) {
      const why = this.#refusal(peerId)
      if (why !== undefined) this.#disconnect(peerId, why)
    }
  }

  /**
   * Test-only partition switch (devnet): peers whose hex public keys are in
   * `publicKeysHex` are disconnected, refused and not dialed; an empty set
   * heals, and the dial loop reconnects.
   */
  setBlocked(publicKeysHex: Set<string>): void {
    const before = this.#blocked
    this.#blocked = new Set([...publicKeysHex].map((h) => h.toLowerCase()))
    // A healed peer is dialed at the next tick, whatever failures came before.
    for (const h of before) if (!this.#blocked.has(h)) this.#backoff.success(h)
    this.recheck()
    if (this.#state === 'running') this.#tick()
  }

  /** Connected peers, one entry per peer. */
  peers(): PeerInfo[] {
    return this.#connectedPeers().map((p) => ({ publicKey: p.publicKey, peerId: p.peerId.toString(), addr: p.addr, encryption: p.encryption }))
  }

  /** Round-trip time to a connected peer through the ping service, in ms. */
  async ping(peerPublicKey: Uint8Array, opts: { signal?: AbortSignal } = {}): Promise<number> {
    const libp2p = this.#libp2p
    if (libp2p === undefined || this.#state !== 'running') throw new P2PError('P2P_NOT_STARTED', 'p2p node is not running')
    const peerId = peerIdFromOrgKey(peerPublicKey)
    if (!this.#isConnected(peerId)) throw new P2PError('P2P_NO_PEER', 'peer is not connected')
    const { signal, dispose } = scopedSignal(DEFAULT_REQUEST_TIMEOUT_MS, opts.signal, this.#abort.signal)
    try {
      return await libp2p.services.ping.ping(peerId, { signal })
    } catch (err) {
      if (signal.aborted) throw abortError(signal, 'ping')
      throw new P2PError('P2P_STREAM_ERROR', 'ping failed', { cause: err })
    } finally {
      dispose()
    }
  }

  // Why `peerId` may not connect or use radchain protocols, or undefined when it may.
  #refusal(peerId: PeerId): string | undefined {
    const key = orgKeyOf(peerId)
    if (key === undefined) return 'not an Ed25519 peer'
    const hex = toHex(key)
    if (hex === this.#selfHex) return 'self'
    if (this.#blocked.has(hex)) return 'blocked'
    if (this.#scores.isBanned(hex)) return 'banned'
    let allowed = false
    try {
      allowed = this.#init.isAllowed(key) === true
    } catch (err) {
      this.#log.error('isAllowed threw', { error: errorMessage(err) })
    }
    return allowed ? undefined : 'not admitted'
  }

  #newProtocol(name: string): string {
    const protocol = protocolId(this.#init.networkId, name)
    if (this.#channels.has(name) || this.#handlers.has(name)) throw new P2PError('P2P_INVALID_ARGUMENT', `protocol ${name} is already registered`)
    if (this.#state === 'stopping' || this.#state === 'stopped') throw new P2PError('P2P_NOT_STARTED', 'p2p node is stopped')
    return protocol
  }

  #channelFor(name: string, data: Uint8Array): ChannelEntry | undefined {
    const ch = this.#channels.get(name)
    if (ch === undefined) throw new P2PError('P2P_INVALID_ARGUMENT', `unknown channel ${name}`)
    assertBytes(data, undefined, 'message')
    if (data.length > ch.opts.maxMessageBytes)
      throw new P2PError('P2P_TOO_LARGE', `message of ${data.length} bytes exceeds the channel bound of ${ch.opts.maxMessageBytes}`)
    return this.#state === 'running' ? ch : undefined
  }

  #isConnected(peerId: PeerId): boolean {
    return this.#libp2p?.getConnections(peerId).some((c) => c.status === 'open') ?? false
  }

  #connectedPeers(): { peerId: PeerId; publicKey: Uint8Array; hex: string; addr: string; encryption: string }[] {
    const out = new Map<string, { peerId: PeerId; publicKey: Uint8Array; hex: string; addr: string; encryption: string }>()
    for (const c of this.#libp2p?.getConnections() ?? []) {
      if (c.status !== 'open') continue
      const key = orgKeyOf(c.remotePeer)
      if (key === undefined) continue
      const hex = toHex(key)
      if (!out.has(hex)) out.set(hex, { peerId: c.remotePeer, publicKey: key, hex, addr: c.remoteAddr.toString(), encryption: channelName(c.encryption) })
    }
    return [...out.values()]
  }

  #senderFor(ch: ChannelEntry, peerId: PeerId, hex: string): ChannelSender {
    let s = ch.senders.get(hex)
    if (s === undefined) {
      s = new ChannelSender({
        open: (signal) => this.#openStream(peerId, ch.protocol, signal),
        log: this.#log,
        signal: this.#abort.signal,
        onViolation: this.#reporter(peerId),
      })
      ch.senders.set(hex, s)
    }
    return s
  }

  async #openStream(peerId: PeerId, protocol: string, signal: AbortSignal): Promise<Stream> {
    const conn = this.#libp2p?.getConnections(peerId).find((c) => c.status === 'open')
    if (conn === undefined) throw new P2PError('P2P_NO_PEER', 'peer is not connected')
    const open = scopedSignal(OPEN_STREAM_TIMEOUT_MS, signal)
    try {
      return await conn.newStream(protocol, { signal: open.signal })
    } catch (err) {
      if (signal.aborted) throw abortError(signal, 'opening a stream')
      if (err instanceof Error && err.name === 'UnsupportedProtocolError') throw new P2PError('P2P_REFUSED', `peer does not serve ${protocol}`, { cause: err })
      if (err instanceof Error && err.name === 'ConnectionClosedError') throw new P2PError('P2P_NO_PEER', 'connection to the peer is closing', { cause: err })
      // A stream that closes during protocol selection rejects with its 'close' Event.
      const what = err instanceof Error ? err.name : err instanceof Event ? `stream ${err.type}` : 'unknown failure'
      throw new P2PError('P2P_STREAM_ERROR', `could not open a stream: ${what}`, { cause: err })
    } finally {
      open.dispose()
    }
  }

  #reporter(peerId: PeerId): ViolationReporter {
    return (points, reason) => {
      const key = orgKeyOf(peerId)
      if (key === undefined || this.#state === 'stopped') return
      try {
        this.penalize(key, points, reason)
      } catch (err) {
        this.#log.error('penalty failed', { error: errorMessage(err) })
      }
    }
  }

  // Admits the remote of an inbound stream, or aborts the stream.
  #admit(stream: Stream, connection: Connection): Uint8Array | undefined {
    const why = this.#state === 'running' ? this.#refusal(connection.remotePeer) : 'node not running'
    if (why === undefined) return orgKeyOf(connection.remotePeer)
    this.#log.debug('inbound stream refused', { peer: connection.remotePeer.toString(), why })
    stream.abort(new P2PError('P2P_REFUSED', why))
    return undefined
  }

  async #registerChannel(name: string, ch: ChannelEntry): Promise<void> {
    const libp2p = this.#libp2p
    if (libp2p === undefined) return
    await libp2p.handle(
      ch.protocol,
      (stream, connection) => {
        try {
          const from = this.#admit(stream, connection)
          if (from === undefined) return
          receiveChannel(stream, {
            maxMessageBytes: ch.opts.maxMessageBytes,
            onMessage: (data) => ch.opts.onMessage(from, data),
            onViolation: this.#reporter(connection.remotePeer),
            log: this.#log,
            frameTimeoutMs: this.#init.frameTimeoutMs,
          })
        } catch (err) {
          this.#log.error('channel stream handler failed', { name, error: errorMessage(err) })
          stream.abort(err instanceof Error ? err : new P2PError('P2P_STREAM_ERROR', 'handler failed'))
        }
      },
      { maxInboundStreams: CHANNEL_MAX_INBOUND_STREAMS },
    )
  }

  async #registerHandler(name: string, h: HandlerEntry): Promise<void> {
    const libp2p = this.#libp2p
    if (libp2p === undefined) return
    await libp2p.handle(
      h.protocol,
      (stream, connection) => {
        try {
          const from = this.#admit(stream, connection)
          if (from === undefined) return
          const ctx = { signal: this.#abort.signal, onViolation: this.#reporter(connection.remotePeer), log: this.#log }
          const budgetKey = `${toHex(from)}/${h.protocol}`
          const budget = h.pipe === undefined ? undefined : (this.#pipeBudgets.get(budgetKey) ?? new PipeBudget())
          if (budget !== undefined) this.#pipeBudgets.set(budgetKey, budget)
          const slots =
            h.pipe === undefined
              ? (this.#inboundSlots.get(budgetKey) ?? new Limiter(h.opts.perPeer ?? INBOUND_PER_PEER, REQUEST_MAX_INBOUND_STREAMS))
              : undefined
          if (slots !== undefined) this.#inboundSlots.set(budgetKey, slots)
          const p = (
            h.pipe !== undefined
              ? servePipe(stream, from, { ...h.opts, concurrency: h.pipe }, { ...ctx, budget })
              : serveRequest(stream, from, h.opts, { ...ctx, slots })
          )
            .catch((err: unknown) => {
              this.#log.error('request handler failed', { name, error: errorMessage(err) })
            })
            .finally(() => {
              this.#inflight.delete(p)
              if (budget !== undefined && budget.pipes === 0 && this.#pipeBudgets.get(budgetKey) === budget) this.#pipeBudgets.delete(budgetKey)
              if (slots !== undefined && slots.idle && this.#inboundSlots.get(budgetKey) === slots) this.#inboundSlots.delete(budgetKey)
            })
          this.#inflight.add(p)
        } catch (err) {
          this.#log.error('request stream handler failed', { name, error: errorMessage(err) })
          stream.abort(err instanceof Error ? err : new P2PError('P2P_STREAM_ERROR', 'handler failed'))
        }
      },
      { maxInboundStreams: REQUEST_MAX_INBOUND_STREAMS, maxOutboundStreams: REQUEST_MAX_OUTBOUND_STREAMS },
    )
  }

  #onPeerEvent(event: keyof P2PEvents, peerId: PeerId): void {
    try {
      const key = orgKeyOf(peerId)
      if (key === undefined) return
      const hex = toHex(key)
      if (event === 'peer:connect') {
        this.#backoff.success(hex)
        this.#log.info('peer connected', { peer: peerId.toString() })
      } else {
        for (const [k, c] of this.#pipes) {
          if (!k.startsWith(`${hex}/`)) continue
          c.close()
          this.#pipes.delete(k)
        }
        for (const ch of this.#channels.values()) {
          const s = ch.senders.get(hex)
          ch.senders.delete(hex)
          void s?.close()
        }
        this.#log.info('peer disconnected', { peer: peerId.toString() })
      }
      this.emit(event, key)
    } catch (err) {
      this.#log.error('peer event listener threw', { event, error: errorMessage(err) })
    }
  }

  #disconnect(peerId: PeerId, why: string): void {
    const conns = this.#libp2p?.getConnections(peerId) ?? []
    if (conns.length > 0) this.#log.info('disconnecting peer', { peer: peerId.toString(), why })
    for (const c of conns) c.abort(new P2PError('P2P_REFUSED', `peer ${why}`))
  }

  // One pass of the reconnect loop.
  #tick(): void {
    const libp2p = this.#libp2p
    if (libp2p === undefined || this.#state !== 'running') return
    let targets: { publicKey: Uint8Array; addrs: string[] }[]
    try {
      targets = this.#init.peersToDial()
    } catch (err) {
      this.#log.error('peersToDial threw', { error: errorMessage(err) })
      return
    }
    const wanted = new Set<string>()
    for (const t of targets) {
      if (!(t.publicKey instanceof Uint8Array) || t.publicKey.length !== ORG_KEY_BYTES) continue
      const hex = toHex(t.publicKey)
      wanted.add(hex)
      if (this.#dialing.has(hex) || !this.#backoff.due(hex)) continue
      let peerId: PeerId
      try {
        peerId = peerIdFromOrgKey(t.publicKey)
      } catch {
        continue
      }
      if (this.#refusal(peerId) !== undefined || libp2p.getConnections(peerId).length > 0) continue
      const addrs = dialAddrs(t.addrs, peerId)
      if (addrs.length === 0) continue
      this.#dialing.add(hex)
      const dial = scopedSignal(DIAL_TIMEOUT_MS, this.#abort.signal)
      libp2p
        .dial(addrs, { signal: dial.signal })
        .then(
          () => this.#backoff.success(hex),
          (err: unknown) => {
            const delay = this.#backoff.failure(hex)
            this.#log.debug('dial failed', { peer: peerId.toString(), retryInMs: delay, error: errorMessage(err) })
          },
        )
        .finally(() => {
          dial.dispose()
          this.#dialing.delete(hex)
        })
    }
    this.#backoff.retain(wanted)
  }
}

// Parses `addrs` and makes each end in /p2p/<peerId>; drops those that do not
// parse or name another peer.
function dialAddrs(addrs: string[], peerId: PeerId): Multiaddr[] {
  const out: Multiaddr[] = []
  const id = peerId.toString()
  for (const a of Array.isArray(addrs) ? addrs : []) {
    try {
      const ma = multiaddr(a)
      const named = ma.getComponents().findLast((c) => c.name === 'p2p')?.value
      if (named === undefined) out.push(ma.encapsulate(`/p2p/${id}`))
      else if (named === id) out.push(ma)
    } catch {
      // an unparsable address is skipped
    }
  }
  return out
}
