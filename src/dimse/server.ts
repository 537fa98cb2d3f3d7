import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { createServer as createTlsServer } from 'node:tls'
import { errorMessage, isRadError, type Logger } from '../util/index.js'
import type { DimseBackend, DimsePeer, DimseStoreResult, DimseStoreSession } from './backend.js'
import { CMD, COMMAND_FIELD, MAX_COMMAND_BYTES, NO_DATASET, STATUS, decodeCommand, encodeCommand, type Command } from './command.js'
import { DimseError } from './errors.js'
import { answerContexts } from './negotiate.js'
import { encodeFileMeta } from './part10.js'
import { runFind, runMove, type QrContext } from './qr-scp.js'
import { QR_FIND, QR_MOVE } from './query.js'
import {
  ABORT,
  APPLICATION_CONTEXT,
  PC_RESULT,
  PDU_TYPE,
  PduReader,
  REJECT,
  decodePdu,
  encodePdu,
  fragmentPData,
  type AssociateRq,
  type ContextAnswer,
  type Pdu,
  type Pdv,
} from './pdu.js'

/** Maximum Length Received radchain announces (PS3.8 D.1): the P-DATA-TF PDUs it reads are at most this long. */
export const DEFAULT_MAX_PDU_LENGTH = 256 * 1024
/** Longest PDU other than P-DATA-TF radchain reads: an A-ASSOCIATE-RQ with a few hundred presentation contexts fits. */
const MAX_ASSOCIATE_BYTES = 1024 * 1024
/** ARTIM (PS3.8 9.1.5): how long a connection may wait for its A-ASSOCIATE-RQ, or for the peer to close after a release or rejection. */
export const DEFAULT_ARTIM_MS = 30_000
/** How long an established association may send nothing before it is aborted (a peer that stopped answering). */
export const DEFAULT_IDLE_MS = 120_000
/** A PDV item's header (PS3.8 9.3.5.1): its length, the presentation context ID and the message control header. */
const PDV_HEADER_BYTES = 6
/** Connections open at once, associated or not, per association slot (net.Server maxConnections). */
const CONNECTIONS_PER_SLOT = 4
/** Associations open at once; more are rejected as transient (local limit exceeded). */
export const DEFAULT_MAX_ASSOCIATIONS = 16

/** Options of the DIMSE listener. */
export interface DimseServerOpts {
  readonly host: string
  /** 0 picks a free port. */
  readonly port: number
  /** This node's AE title: an association calling another is rejected (PS3.8 Table 9-21, reason 7). */
  readonly aeTitle: string
  /** PEM certificate and key: DICOM TLS (PS3.15 B.1) on this port. */
  readonly tls?: { readonly cert: Uint8Array; readonly key: Uint8Array }
  readonly maxPduLength?: number
  /** Largest dataset of one C-STORE; a larger one is read to its end, dropped and answered Out of Resources. */
  readonly maxInstanceBytes: number
  readonly artimMs?: number
  readonly idleMs?: number
  readonly maxAssociations?: number
  /** How long the peer of an association this node opens (a C-MOVE's destination) may take to answer. */
  readonly scuTimeoutMs?: number
  /** Implementation Class UID and Version Name (PS3.7 D.3.3.2-3) announced, and written into received files' meta. */
  readonly implementationClassUid: string
  readonly implementationVersionName: string
  readonly logger: Logger
}

/**
 * The DICOM SCP (PS3.8 upper layer, PS3.7 DIMSE): accepts associations from
 * the peers the backend admits, answers C-ECHO, and hands each C-STORE's
 * dataset, framed as a Part 10 file without re-encoding it, to the
 * backend's store before it answers. Knows nothing of the node.
 */
export class DimseServer {
  readonly #opts: DimseServerOpts
  readonly #backend: DimseBackend
  readonly #log: Logger
  #server: Server | undefined
  readonly #open = new Map<Socket, Promise<void>>()
  /** Established associations, counted against maxAssociations when their A-ASSOCIATE-RQ is accepted. */
  readonly #slots = {
    taken: 0,
    take: (): boolean => {
      if (this.#slots.taken >= (this.#opts.maxAssociations ?? DEFAULT_MAX_ASSOCIATIONS)) return false
      this.#slots.taken++
      return true
    },
    release: (): void => {
      this.#slots.taken--
    },
  }

  constructor(opts: DimseServerOpts, modules: { backend: DimseBackend }) {
    this.#opts = opts
    this.#backend = modules.backend
    this.#log = opts.logger
  }

  /** `AE@host:port` once listening (for daemon.json and the log). */
  get address(): string {
    const a = this.#server?.address() as AddressInfo | null | undefined
    if (a === undefined || a === null) return ''
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address
    return `${this.#opts.aeTitle}@${host}:${a.port}`
  }

  /** The port listened on (after start). */
  get port(): number {
    return (this.#server?.address() as AddressInfo | null | undefined)?.port ?? 0
  }

  /** Starts listening. */
  async start(): Promise<void> {
    const onSocket = (s: Socket): void => {
      const run = new Association(s, this.#opts, this.#backend, this.#log, this.#slots)
        .run()
        .catch((err: unknown) => this.#log.warn('dimse: association failed', { err: errorMessage(err) }))
        .finally(() => this.#open.delete(s))
      this.#open.set(s, run)
    }
    const tls = this.#opts.tls
    const server =
      tls === undefined
        ? createTcpServer(onSocket)
        : createTlsServer({ cert: Buffer.from(tls.cert), key: Buffer.from(tls.key), minVersion: 'TLSv1.2' }, onSocket)
    // A TLS handshake that fails never becomes a connection; it is logged, without the peer's data.
    // Connections not yet associated hold up to an A-ASSOCIATE-RQ each (1 MiB) until ARTIM: a few per association slot.
    server.maxConnections = (this.#opts.maxAssociations ?? DEFAULT_MAX_ASSOCIATIONS) * CONNECTIONS_PER_SLOT
    server.on('tlsClientError', (err: Error, s: Socket) =>
      this.#log.info('dimse: TLS handshake refused', { address: plainAddress(s.remoteAddress), err: errorMessage(err) }),
    )
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.#opts.port, this.#opts.host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    this.#server = server
    this.#log.info('dimse: listening', { address: this.address, tls: tls !== undefined })
  }

  /** Stops listening, aborts the open associations and waits for a store in progress to finish. */
  async stop(): Promise<void> {
    const server = this.#server
    this.#server = undefined
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()))
    for (const s of this.#open.keys()) {
      if (!s.destroyed && !s.writableEnded) s.end(encodePdu({ type: PDU_TYPE.abort, source: ABORT.sourceProvider, reason: ABORT.reasonNotSpecified }))
      // The peer closes on the abort; one that does not is cut off.
      setTimeout(() => s.destroy(), 500).unref()
    }
    await Promise.allSettled([...this.#open.values()])
  }
}

/** An IPv4-mapped IPv6 address as IPv4. */
function plainAddress(a: string | undefined): string {
  return (a ?? '').replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1')
}

/** What the association is doing with the PDVs it reads. */
interface Pending {
  readonly contextId: number
  readonly command: Command
  readonly parts: Uint8Array[]
  bytes: number
  /** The dataset went over maxInstanceBytes: the rest is read and dropped. */
  overflow: boolean
}

/** One connection: negotiation, then the DIMSE messages, until release, abort, timeout or close. */
class Association {
  readonly #s: Socket
  readonly #opts: DimseServerOpts
  readonly #backend: DimseBackend
  readonly #log: Logger
  readonly #slots: { take(): boolean; release(): void }
  /** This association holds one of the server's slots. */
  #slot = false
  /** ARTIM (PS3.8 9.1.5) as an absolute deadline: before the association is accepted, and after it is released or refused. */
  #artim: ReturnType<typeof setTimeout> | undefined
  readonly #started = Date.now()
  #peer: DimsePeer
  #calledAe = ''
  #contexts = new Map<number, ContextAnswer & { abstractSyntax: string }>()
  #proposed = 0
  #peerMaxPdu = 0
  #established = false
  /** An A-ASSOCIATE-AC was sent (the association is logged when it ends). */
  #accepted = false
  /** Released, refused or aborted on this side: the rest of what the peer sends is dropped. */
  #closing = false
  #store: DimseStoreSession | undefined
  #cmdParts: Uint8Array[] = []
  #cmdBytes = 0
  #cmdContext = -1
  #pending: Pending | undefined
  #stored = 0
  #duplicates = 0
  #failed = 0
  #echoes = 0
  #finds = 0
  #moves = 0
  #end = 'closed'
  /** The C-FIND or C-MOVE being answered (one at a time: no asynchronous operations window is negotiated), run beside the read loop so that a C-CANCEL is heard. */
  #op: { readonly messageId: number; readonly abort: AbortController; readonly done: Promise<void> } | undefined
  /** Messages written one after the other: a response's fragments are never interleaved with another's. */
  #sendChain: Promise<void> = Promise.resolve()

  constructor(s: Socket, opts: DimseServerOpts, backend: DimseBackend, log: Logger, slots: { take(): boolean; release(): void }) {
    this.#s = s
    this.#opts = opts
    this.#backend = backend
    this.#log = log
    this.#slots = slots
    this.#peer = { callingAe: '', address: plainAddress(s.remoteAddress) }
  }

  async run(): Promise<void> {
    const s = this.#s
    const artim = this.#opts.artimMs ?? DEFAULT_ARTIM_MS
    s.setNoDelay(true)
    // A peer that trickles bytes keeps an inactivity timer from firing: ARTIM runs from the connection, whatever arrives.
    this.#startArtim(artim)
    s.on('timeout', () => {
      if (this.#end === 'closed') this.#end = this.#established ? 'idle timeout: aborted' : 'no A-ASSOCIATE-RQ in time'
      if (this.#established && !this.#closing) this.#abort(ABORT.reasonNotSpecified)
      s.destroy()
    })
    // Errors (a reset by the peer) end the read loop below.
    s.on('error', () => undefined)
    const maxPdu = this.#opts.maxPduLength ?? DEFAULT_MAX_PDU_LENGTH
    const reader = new PduReader(MAX_ASSOCIATE_BYTES)
    try {
      for await (const chunk of s as AsyncIterable<Buffer>) {
        // Released or refused: whatever the peer still sends is dropped until it closes (ARTIM bounds the wait).
        if (this.#closing) continue
        reader.push(chunk)
        for (let raw = reader.next(); raw !== undefined && !this.#closing; raw = reader.next()) {
          const pdu = decodePdu(raw.type, raw.body)
          if (!(await this.#on(pdu))) {
            this.#closing = true
            this.#startArtim(artim)
            s.end()
          }
          // Once established, every PDU is at most the length announced: a longer one is refused before it is buffered.
          if (this.#established) reader.maxLength = maxPdu
        }
      }
    } catch (err) {
      if (err instanceof DimseError) {
        this.#end = `aborted (${err.code})`
        this.#log.warn('dimse: a peer broke the protocol; association aborted', { ...this.#who(), code: err.code, err: err.message })
        this.#abort(err.code === 'DIMSE_PDU_TOO_LARGE' ? ABORT.reasonInvalidParameter : ABORT.reasonUnrecognizedParameter)
      } else if (this.#end === 'closed') this.#end = `connection error (${(err as { code?: string }).code ?? errorMessage(err)})`
    } finally {
      const op = this.#op
      if (op !== undefined) {
        op.abort.abort()
        await op.done
      }
      await this.#close()
    }
    if (this.#accepted)
      this.#log.info('dimse: association ended', {
        ...this.#who(),
        contexts: this.#contexts.size,
        proposed: this.#proposed,
        stored: this.#stored,
        duplicates: this.#duplicates,
        failed: this.#failed,
        echoes: this.#echoes,
        finds: this.#finds,
        moves: this.#moves,
        ms: Date.now() - this.#started,
        end: this.#pending !== undefined || this.#cmdParts.length > 0 ? `${this.#end}, a message cut short` : this.#end,
      })
  }

  #who(): Record<string, string> {
    return { calling: this.#peer.callingAe, called: this.#calledAe, address: this.#peer.address }
  }

  /** Handles one PDU; false when the association is over on this side (the peer is expected to close). */
  async #on(pdu: Pdu): Promise<boolean> {
    if (!this.#established) {
      if (pdu.type === PDU_TYPE.associateRq) return this.#associate(pdu)
      throw new DimseError('DIMSE_PDU_MALFORMED', `PDU type ${pdu.type} before an A-ASSOCIATE-RQ`)
    }
    switch (pdu.type) {
      case PDU_TYPE.pData:
        for (const pdv of pdu.pdvs) await this.#onPdv(pdv)
        return true
      case PDU_TYPE.releaseRq:
        if (this.#pending !== undefined || this.#cmdParts.length > 0) throw new DimseError('DIMSE_PDU_MALFORMED', 'A-RELEASE-RQ in the middle of a message')
        // A release asked while a C-FIND or C-MOVE is answered: its responses are sent first.
        if (this.#op !== undefined) await this.#op.done
        await this.#sendChain
        this.#end = 'released'
        this.#established = false
        this.#closing = true
        await this.#send(encodePdu({ type: PDU_TYPE.releaseRp }))
        return false
      case PDU_TYPE.abort:
        this.#end = 'aborted by the peer'
        this.#established = false
        this.#s.destroy()
        return false
      default:
        throw new DimseError('DIMSE_PDU_MALFORMED', `unexpected PDU type ${pdu.type} in an established association`)
    }
  }

  async #associate(rq: AssociateRq): Promise<boolean> {
    this.#peer = { callingAe: rq.callingAe, address: this.#peer.address }
    this.#calledAe = rq.calledAe
    this.#proposed = rq.contexts.length
    const reject = async (result: number, source: number, reason: number, why: string): Promise<boolean> => {
      this.#log.info('dimse: association refused', { ...this.#who(), why })
      await this.#send(encodePdu({ type: PDU_TYPE.associateRj, result, source, reason }))
      return false
    }
    if ((rq.protocolVersion & 1) === 0)
      return reject(REJECT.resultPermanent, REJECT.sourceAcse, REJECT.acseProtocolVersionNotSupported, 'protocol version not supported')
    if (rq.applicationContext !== APPLICATION_CONTEXT)
      return reject(REJECT.resultPermanent, REJECT.sourceUser, REJECT.userApplicationContextNotSupported, 'application context not supported')
    if (rq.calledAe !== this.#opts.aeTitle)
      return reject(REJECT.resultPermanent, REJECT.sourceUser, REJECT.userCalledAeNotRecognized, 'called AE title is not this node')
    if (!(await this.#backend.admit(this.#peer)))
      return reject(REJECT.resultPermanent, REJECT.sourceUser, REJECT.userCallingAeNotRecognized, 'calling AE title or address not a known peer')
    if (!this.#slots.take())
      return reject(REJECT.resultTransient, REJECT.sourcePresentation, REJECT.presentationLocalLimitExceeded, 'too many associations open')
    this.#slot = true
    // A presentation context ID names one context (PS3.8 9.3.2.2): a repeated ID is not answered a second time.
    const seen = new Set<number>()
    const proposed = rq.contexts.filter((c) => !seen.has(c.id) && seen.add(c.id) !== undefined)
    const answers = answerContexts(proposed)
    const abstract = new Map(proposed.map((c) => [c.id, c.abstractSyntax]))
    for (const a of answers) if (a.result === PC_RESULT.acceptance) this.#contexts.set(a.id, { ...a, abstractSyntax: abstract.get(a.id) ?? '' })
    this.#peerMaxPdu = rq.userInfo.maxPduLength
    this.#established = true
    this.#accepted = true
    this.#stopArtim()
    this.#s.setTimeout(this.#opts.idleMs ?? DEFAULT_IDLE_MS)
    await this.#send(
      encodePdu({
        type: PDU_TYPE.associateAc,
        protocolVersion: 1,
        calledAe: rq.calledAe,
        callingAe: rq.callingAe,
        applicationContext: APPLICATION_CONTEXT,
        contexts: answers,
        userInfo: {
          maxPduLength: this.#opts.maxPduLength ?? DEFAULT_MAX_PDU_LENGTH,
          implementationClassUid: this.#opts.implementationClassUid,
          implementationVersionName: this.#opts.implementationVersionName,
        },
      }),
    )
    return true
  }

  async #onPdv(pdv: Pdv): Promise<void> {
    if (!this.#contexts.has(pdv.contextId)) throw new DimseError('DIMSE_PDU_MALFORMED', `a PDV on presentation context ${pdv.contextId}, not accepted`)
    if (pdv.command) {
      if (this.#pending !== undefined) throw new DimseError('DIMSE_PDU_MALFORMED', 'a command fragment while a dataset was expected')
      if (this.#cmdParts.length > 0 && pdv.contextId !== this.#cmdContext)
        throw new DimseError('DIMSE_PDU_MALFORMED', 'command fragments on two presentation contexts')
      this.#cmdContext = pdv.contextId
      // Each fragment counts with its item header: empty fragments would otherwise pile up uncounted.
      this.#cmdBytes += pdv.data.length + PDV_HEADER_BYTES
      if (this.#cmdBytes > MAX_COMMAND_BYTES) throw new DimseError('DIMSE_COMMAND_MALFORMED', `a command set above ${MAX_COMMAND_BYTES} bytes`)
      // Copied: the PDU's buffer is not kept past this PDV.
      if (pdv.data.length > 0) this.#cmdParts.push(Uint8Array.from(pdv.data))
      if (!pdv.last) return
      const cmd = decodeCommand(this.#cmdParts.length === 1 ? (this.#cmdParts[0] as Uint8Array) : Buffer.concat(this.#cmdParts))
      this.#cmdParts = []
      this.#cmdBytes = 0
      if (cmd.hasDataset) this.#pending = { contextId: pdv.contextId, command: cmd, parts: [], bytes: 0, overflow: false }
      else await this.#dispatch(pdv.contextId, cmd, undefined)
      return
    }
    const p = this.#pending
    if (p === undefined) throw new DimseError('DIMSE_PDU_MALFORMED', 'a dataset fragment without its command')
    if (pdv.contextId !== p.contextId) throw new DimseError('DIMSE_PDU_MALFORMED', 'dataset fragments on another presentation context than their command')
    // Counted with its item header, and an empty fragment keeps nothing: a view of no bytes would still hold its
    // whole PDU's buffer, and a peer sending only empty fragments would grow this association without bound.
    p.bytes += pdv.data.length + PDV_HEADER_BYTES
    if (p.bytes > this.#opts.maxInstanceBytes) {
      p.overflow = true
      p.parts.length = 0
    } else if (pdv.data.length > 0) p.parts.push(pdv.data)
    if (!pdv.last) return
    this.#pending = undefined
    await this.#dispatch(p.contextId, p.command, p)
  }

  async #dispatch(contextId: number, cmd: Command, data: Pending | undefined): Promise<void> {
    const field = cmd.field
    if (field === COMMAND_FIELD.cCancelRq) {
      // C-CANCEL (PS3.7 9.3.2.3): no answer of its own; the operation it names ends with status Cancel. A late one is ignored.
      const op = this.#op
      if (op !== undefined && cmd.us(CMD.messageIdBeingRespondedTo) === op.messageId) op.abort.abort()
      return
    }
    const messageId = cmd.us(CMD.messageId)
    const ctx = this.#contexts.get(contextId) as ContextAnswer & { abstractSyntax: string }
    if ((field === COMMAND_FIELD.cFindRq && QR_FIND.has(ctx.abstractSyntax)) || (field === COMMAND_FIELD.cMoveRq && QR_MOVE.has(ctx.abstractSyntax))) {
      if (this.#op !== undefined) {
        // A second operation while one runs: no asynchronous operations window was negotiated (PS3.7 D.3.3.3).
        await this.#respond(contextId, field | 0x8000, messageId, ctx.abstractSyntax, undefined, {
          status: STATUS.outOfResources,
          comment: 'one operation at a time',
        })
        return
      }
      const abort = new AbortController()
      const qr: QrContext = {
        contextId,
        messageId,
        abstractSyntax: ctx.abstractSyntax,
        transferSyntax: ctx.transferSyntax,
        command: cmd,
        identifier: data === undefined || data.overflow ? undefined : Buffer.concat(data.parts),
        peer: this.#peer,
        backend: this.#backend,
        opts: this.#opts,
        log: this.#log,
        signal: abort.signal,
        send: (values, dataset) => this.#message(contextId, values, dataset),
      }
      if (field === COMMAND_FIELD.cFindRq) this.#finds++
      else this.#moves++
      // The peer waits for the answers: the idle timer does not run meanwhile.
      this.#s.setTimeout(0)
      const done = (field === COMMAND_FIELD.cFindRq ? runFind(qr) : runMove(qr))
        .catch((err: unknown) =>
          this.#log.warn('dimse: a query/retrieve failed', { ...this.#who(), code: isRadError(err) ? err.code : undefined, err: errorMessage(err) }),
        )
        .finally(() => {
          this.#op = undefined
          if (!this.#s.destroyed) this.#s.setTimeout(this.#opts.idleMs ?? DEFAULT_IDLE_MS)
        })
      this.#op = { messageId, abort, done }
      return
    }
    if (field === COMMAND_FIELD.cEchoRq) {
      this.#echoes++
      await this.#respond(contextId, COMMAND_FIELD.cEchoRsp, messageId, ctx.abstractSyntax, undefined, { status: STATUS.success })
      return
    }
    if (field === COMMAND_FIELD.cStoreRq) {
      const sopClass = cmd.text(CMD.affectedSopClassUid) ?? ''
      const sop = cmd.text(CMD.affectedSopInstanceUid) ?? ''
      const r = await this.#cStore(ctx, sopClass, sop, data)
      if (r.status === STATUS.success) {
        this.#stored++
        if (r.duplicate === true) this.#duplicates++
      } else {
        this.#failed++
        this.#log.debug('dimse: a C-STORE failed', { ...this.#who(), status: `0x${r.status.toString(16).padStart(4, '0')}`, why: r.comment })
      }
      await this.#respond(contextId, COMMAND_FIELD.cStoreRsp, messageId, sopClass, sop, r)
      return
    }
    // A request radchain does not perform on an accepted context (only C-ECHO and C-STORE are accepted): refused by status.
    if ((field & 0x8000) === 0) {
      await this.#respond(contextId, field | 0x8000, messageId, ctx.abstractSyntax, undefined, { status: STATUS.unrecognizedOperation })
      return
    }
    throw new DimseError('DIMSE_COMMAND_MALFORMED', `unexpected command field 0x${field.toString(16)}`)
  }

  async #cStore(ctx: ContextAnswer & { abstractSyntax: string }, sopClass: string, sop: string, data: Pending | undefined): Promise<DimseStoreResult> {
    if (data === undefined) return { status: STATUS.cannotUnderstand, comment: 'C-STORE without a dataset' }
    if (data.overflow) return { status: STATUS.outOfResources, comment: `dataset above the ${this.#opts.maxInstanceBytes} bytes this node takes` }
    if (sopClass === '' || sop === '') return { status: STATUS.cannotUnderstand, comment: 'C-STORE without its affected SOP class or instance UID' }
    if (sopClass !== ctx.abstractSyntax) return { status: STATUS.sopClassNotSupported, comment: "affected SOP class is not the presentation context's" }
    const meta = encodeFileMeta({
      sopClassUid: sopClass,
      sopInstanceUid: sop,
      transferSyntaxUid: ctx.transferSyntax,
      implementationClassUid: this.#opts.implementationClassUid,
      implementationVersionName: this.#opts.implementationVersionName,
      sourceAe: this.#peer.callingAe,
    })
    const part10 = Buffer.concat([meta, ...data.parts])
    data.parts.length = 0
    this.#store ??= this.#backend.openStore(this.#peer)
    // The peer waits for the answer: the idle timer does not run while the instance is made durable.
    this.#s.setTimeout(0)
    try {
      return await this.#store.store(part10, { sopClassUid: sopClass, sopInstanceUid: sop })
    } catch (err) {
      this.#log.warn('dimse: an instance could not be stored', { ...this.#who(), code: isRadError(err) ? err.code : undefined, err: errorMessage(err) })
      return { status: STATUS.processingFailure, comment: 'could not be stored on this node' }
    } finally {
      if (!this.#s.destroyed) this.#s.setTimeout(this.#opts.idleMs ?? DEFAULT_IDLE_MS)
    }
  }

  async #respond(contextId: number, field: number, messageId: number, sopClass: string, sop: string | undefined, r: DimseStoreResult): Promise<void> {
    const values = new Map<number, string | number>([
      [CMD.affectedSopClassUid, sopClass],
      [CMD.commandField, field],
      [CMD.messageIdBeingRespondedTo, messageId],
      [CMD.dataSetType, NO_DATASET],
      [CMD.status, r.status],
    ])
    if (sop !== undefined && sop !== '') values.set(CMD.affectedSopInstanceUid, sop)
    if (r.status !== STATUS.success && r.comment !== undefined) values.set(CMD.errorComment, r.comment.slice(0, 64))
    await this.#message(contextId, values, undefined)
  }

  /** Sends one message (command, and dataset if any) after those before it. */
  #message(contextId: number, values: ReadonlyMap<number, string | number>, dataset: Uint8Array | undefined): Promise<void> {
    const run = async (): Promise<void> => {
      for (const pdu of fragmentPData(contextId, true, encodeCommand(values), this.#peerMaxPdu)) await this.#send(pdu)
      if (dataset !== undefined) for (const pdu of fragmentPData(contextId, false, dataset, this.#peerMaxPdu)) await this.#send(pdu)
    }
    const next = this.#sendChain.then(run)
    this.#sendChain = next.catch(() => undefined)
    return next
  }

  #abort(reason: number): void {
    this.#closing = true
    if (this.#s.destroyed || this.#s.writableEnded) return
    this.#s.end(encodePdu({ type: PDU_TYPE.abort, source: ABORT.sourceProvider, reason }))
  }

  #startArtim(ms: number): void {
    this.#stopArtim()
    this.#artim = setTimeout(() => {
      if (this.#end === 'closed') this.#end = 'no A-ASSOCIATE-RQ in time'
      this.#s.destroy()
    }, ms)
    this.#artim.unref()
  }

  #stopArtim(): void {
    if (this.#artim !== undefined) clearTimeout(this.#artim)
    this.#artim = undefined
  }

  /** Closes the connection once what was written (an A-ABORT, a release answer) has left, or after a second. */
  async #close(): Promise<void> {
    this.#stopArtim()
    if (this.#slot) {
      this.#slot = false
      this.#slots.release()
    }
    const s = this.#s
    if (!s.destroyed && s.writableEnded && !s.writableFinished)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 1000)
        s.once('finish', () => {
          clearTimeout(t)
          resolve()
        })
      })
    s.destroy()
  }

  /** Writes, waiting for the socket to drain when its buffer is full; a closed socket drops the bytes (the read loop ends). */
  async #send(bytes: Uint8Array): Promise<void> {
    const s = this.#s
    if (s.destroyed || !s.writable) return
    if (s.write(bytes)) return
    await new Promise<void>((resolve) => {
      const done = (): void => {
        s.off('drain', done)
        s.off('close', done)
        resolve()
      }
      s.on('drain', done)
      s.on('close', done)
    })
  }
}
