import { connect, type Socket } from 'node:net'
import { CMD, COMMAND_FIELD, MAX_COMMAND_BYTES, NO_DATASET, decodeCommand, encodeCommand, type Command } from './command.js'
import { DimseError } from './errors.js'
import { ABORT, APPLICATION_CONTEXT, PC_RESULT, PDU_TYPE, PduReader, decodePdu, encodePdu, type Pdu, type RoleSelection } from './pdu.js'

/** How long to wait for the TCP connection. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000
/** How long to wait for any answer of the peer (association, a DIMSE response, release), or for it to take what was written. */
export const DEFAULT_SCU_TIMEOUT_MS = 30_000
/** Maximum Length Received the SCU announces (PS3.8 D.1). */
export const SCU_MAX_PDU_LENGTH = 256 * 1024
/** The longest P-DATA-TF the SCU writes, whatever the peer takes (one with no limit gets these). */
const MAX_SEND_PDU = 1024 * 1024
/** The longest dataset the SCU reads in a response (C-FIND and C-MOVE identifiers are small). */
const MAX_RESPONSE_DATASET = 4 * 1024 * 1024

/** A presentation context to propose (the id is given by the client: odd, from 1, in order). */
export interface ContextProposal {
  readonly abstractSyntax: string
  readonly transferSyntaxes: readonly string[]
}

/** Options of an association the node requests as an SCU (PS3.8 7.1). */
export interface DimseClientOpts {
  readonly host: string
  readonly port: number
  readonly callingAe: string
  readonly calledAe: string
  /** At most 128 (PS3.8 9.3.2.2: odd ids 1-255). */
  readonly contexts: readonly ContextProposal[]
  readonly roles?: readonly RoleSelection[]
  readonly connectTimeoutMs?: number
  /** ARTIM and DIMSE timeout: how long any answer of the peer may take. */
  readonly timeoutMs?: number
  readonly implementationClassUid: string
  readonly implementationVersionName: string
  /** Aborts the association. */
  readonly signal?: AbortSignal
}

/** A DIMSE response: its command and, for C-FIND and a final C-MOVE, its identifier's bytes. */
export interface DimseResponse {
  readonly command: Command
  readonly status: number
  readonly dataset?: Uint8Array
}

/** What C-STORE sends (PS3.7 9.1.1): the dataset's bytes as stored, in `transferSyntaxUid`, never transcoded. */
export interface StoreRequest {
  readonly sopClassUid: string
  readonly sopInstanceUid: string
  readonly transferSyntaxUid: string
  readonly dataset: Uint8Array
  /** A C-STORE sub-operation of a C-MOVE (PS3.7 9.3.1.1): who asked for it. */
  readonly moveOriginator?: { readonly ae: string; readonly messageId: number }
}

/**
 * The node as a DICOM SCU (PS3.8 upper layer, PS3.7 DIMSE): one
 * association to a peer, one request at a time. Every wait on the peer has
 * a timeout, after which the association is aborted (DIMSE_TIMEOUT); writes
 * wait for the socket to drain; P-DATA-TF PDUs are cut to the peer's
 * Maximum Length Received.
 */
export class DimseClient {
  readonly #s: Socket
  readonly #opts: DimseClientOpts
  readonly #reader = new PduReader(SCU_MAX_PDU_LENGTH)
  readonly #accepted = new Map<number, { abstractSyntax: string; transferSyntax: string }>()
  #peerMax = 0
  #messageId = 0
  #failed: DimseError | undefined
  /** Whoever waits for the next PDU (association answer, response fragments, release). */
  #wake: (() => void) | undefined
  readonly #pdus: Pdu[] = []
  #cmdParts: Uint8Array[] = []
  #dataParts: Uint8Array[] = []
  #dataBytes = 0
  #pendingCommand: Command | undefined
  #released = false

  private constructor(s: Socket, opts: DimseClientOpts) {
    this.#s = s
    this.#opts = opts
    s.on('data', (chunk: Buffer) => {
      try {
        this.#reader.push(chunk)
        for (let raw = this.#reader.next(); raw !== undefined; raw = this.#reader.next()) {
          // Decoded here: a malformed PDU fails the association at once.
          this.#pdus.push(decodePdu(raw.type, raw.body))
        }
      } catch (err) {
        this.#fail(err instanceof DimseError ? err : new DimseError('DIMSE_PDU_MALFORMED', String(err)))
        this.abort()
      }
      this.#wake?.()
    })
    s.on('error', () => undefined)
    s.on('close', () => {
      if (!this.#released) this.#fail(new DimseError('DIMSE_ABORTED', 'the peer closed the connection', { penalize: false }))
      this.#wake?.()
    })
    opts.signal?.addEventListener('abort', () => {
      this.#fail(new DimseError('DIMSE_ABORTED', 'the association was cancelled', { penalize: false }))
      this.abort()
    })
  }

  /** Connects and negotiates; throws DIMSE_CONNECT_FAILED, DIMSE_ASSOCIATION_REJECTED, DIMSE_TIMEOUT or DIMSE_ABORTED. */
  static async associate(opts: DimseClientOpts): Promise<DimseClient> {
    if (opts.contexts.length === 0 || opts.contexts.length > 128) throw new RangeError('an association proposes 1 to 128 presentation contexts')
    opts.signal?.throwIfAborted()
    const s = connect({ host: opts.host, port: opts.port })
    s.setNoDelay(true)
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        s.destroy()
        reject(
          new DimseError(
            'DIMSE_CONNECT_FAILED',
            `no connection to ${opts.host}:${opts.port} within ${opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS} ms`,
            { penalize: false },
          ),
        )
      }, opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS)
      s.once('connect', () => {
        clearTimeout(t)
        resolve()
      })
      s.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(t)
        reject(new DimseError('DIMSE_CONNECT_FAILED', `cannot connect to ${opts.host}:${opts.port} (${err.code ?? err.message})`, { penalize: false }))
      })
    })
    const c = new DimseClient(s, opts)
    await c.#write(
      encodePdu({
        type: PDU_TYPE.associateRq,
        protocolVersion: 1,
        calledAe: opts.calledAe,
        callingAe: opts.callingAe,
        applicationContext: APPLICATION_CONTEXT,
        contexts: opts.contexts.map((p, i) => ({ id: 2 * i + 1, abstractSyntax: p.abstractSyntax, transferSyntaxes: p.transferSyntaxes })),
        userInfo: {
          maxPduLength: SCU_MAX_PDU_LENGTH,
          implementationClassUid: opts.implementationClassUid,
          implementationVersionName: opts.implementationVersionName,
          ...(opts.roles === undefined || opts.roles.length === 0 ? {} : { roles: opts.roles }),
        },
      }),
    )
    const answer = await c.#nextPdu('the A-ASSOCIATE answer')
    if (answer.type === PDU_TYPE.associateRj) {
      c.#released = true
      s.destroy()
      throw new DimseError(
        'DIMSE_ASSOCIATION_REJECTED',
        `${opts.calledAe} at ${opts.host}:${opts.port} rejected the association (result ${answer.result}, source ${answer.source}, reason ${answer.reason}${rejectHint(answer.source, answer.reason)})`,
        { penalize: false },
      )
    }
    if (answer.type !== PDU_TYPE.associateAc) {
      c.abort()
      throw new DimseError('DIMSE_PDU_MALFORMED', `PDU type ${answer.type} in answer to an A-ASSOCIATE-RQ`)
    }
    for (const a of answer.contexts) {
      const proposed = opts.contexts[(a.id - 1) / 2]
      if (a.result === PC_RESULT.acceptance && proposed !== undefined && proposed.transferSyntaxes.includes(a.transferSyntax))
        c.#accepted.set(a.id, { abstractSyntax: proposed.abstractSyntax, transferSyntax: a.transferSyntax })
    }
    c.#peerMax = answer.userInfo.maxPduLength
    return c
  }

  /** The accepted presentation contexts: id, abstract syntax, transfer syntax. */
  get accepted(): ReadonlyMap<number, { readonly abstractSyntax: string; readonly transferSyntax: string }> {
    return this.#accepted
  }

  /** The id of an accepted context for this SOP class and transfer syntax, if any. */
  contextFor(abstractSyntax: string, transferSyntax: string): number | undefined {
    for (const [id, c] of this.#accepted) if (c.abstractSyntax === abstractSyntax && c.transferSyntax === transferSyntax) return id
    return undefined
  }

  /** C-ECHO (PS3.7 9.1.5); its status. */
  async echo(): Promise<number> {
    const ctx = this.#contextOf('1.2.840.10008.1.1')
    const id = this.#nextId()
    await this.#sendCommand(
      ctx,
      new Map<number, string | number>([
        [CMD.affectedSopClassUid, '1.2.840.10008.1.1'],
        [CMD.commandField, COMMAND_FIELD.cEchoRq],
        [CMD.messageId, id],
        [CMD.dataSetType, NO_DATASET],
      ]),
    )
    return (await this.#response(id)).status
  }

  /** C-STORE (PS3.7 9.1.1) of one instance; its status (and Error Comment). Throws DIMSE_NO_CONTEXT when no context fits. */
  async store(rq: StoreRequest): Promise<{ status: number; comment?: string }> {
    const ctx = this.contextFor(rq.sopClassUid, rq.transferSyntaxUid)
    if (ctx === undefined)
      throw new DimseError('DIMSE_NO_CONTEXT', `no accepted presentation context for SOP class ${rq.sopClassUid} in ${rq.transferSyntaxUid}`, {
        penalize: false,
      })
    const id = this.#nextId()
    const cmd = new Map<number, string | number>([
      [CMD.affectedSopClassUid, rq.sopClassUid],
      [CMD.commandField, COMMAND_FIELD.cStoreRq],
      [CMD.messageId, id],
      [CMD.priority, 0],
      [CMD.dataSetType, 0],
      [CMD.affectedSopInstanceUid, rq.sopInstanceUid],
    ])
    if (rq.moveOriginator !== undefined) {
      cmd.set(CMD.moveOriginatorAe, rq.moveOriginator.ae)
      cmd.set(CMD.moveOriginatorMessageId, rq.moveOriginator.messageId)
    }
    await this.#sendCommand(ctx, cmd)
    await this.#sendData(ctx, false, rq.dataset)
    const r = await this.#response(id)
    const comment = r.command.text(CMD.errorComment)
    return comment === undefined || comment === '' ? { status: r.status } : { status: r.status, comment }
  }

  /**
   * Sends a request whose responses may be many (C-FIND, C-MOVE: Pending
   * until the final one): its command and identifier, then each response as
   * it comes; the last yielded is the final one.
   */
  async *request(
    abstractSyntax: string,
    field: number,
    identifier: Uint8Array,
    opts: { readonly extra?: ReadonlyMap<number, string | number>; readonly cancelAfter?: number } = {},
  ): AsyncGenerator<DimseResponse> {
    const ctx = this.#contextOf(abstractSyntax)
    const id = this.#nextId()
    const cmd = new Map<number, string | number>([
      [CMD.affectedSopClassUid, abstractSyntax],
      [CMD.commandField, field],
      [CMD.messageId, id],
      [CMD.priority, 0],
      [CMD.dataSetType, 0],
      ...(opts.extra ?? new Map<number, string | number>()),
    ])
    await this.#sendCommand(ctx, cmd)
    await this.#sendData(ctx, false, identifier)
    // C-CANCEL (PS3.7 9.3.2.3) after that many responses: the peer ends with status Cancel.
    const cancel = async (): Promise<void> =>
      this.#sendCommand(
        ctx,
        new Map<number, string | number>([
          [CMD.commandField, COMMAND_FIELD.cCancelRq],
          [CMD.messageIdBeingRespondedTo, id],
          [CMD.dataSetType, NO_DATASET],
        ]),
      )
    if (opts.cancelAfter === 0) await cancel()
    for (let n = 1; ; n++) {
      const r = await this.#response(id)
      yield r
      if (r.status !== 0xff00 && r.status !== 0xff01) return
      if (opts.cancelAfter === n) await cancel()
    }
  }

  /** The transfer syntax of the accepted context of an abstract syntax. */
  transferSyntaxOf(abstractSyntax: string): string {
    return this.#accepted.get(this.#contextOf(abstractSyntax))?.transferSyntax as string
  }

  /** Releases the association (PS3.8 7.2) and closes; a peer that does not answer in time is aborted. */
  async release(): Promise<void> {
    if (this.#failed !== undefined || this.#s.destroyed) return
    await this.#write(encodePdu({ type: PDU_TYPE.releaseRq }))
    try {
      for (;;) {
        const p = await this.#nextPdu('the A-RELEASE-RP')
        if (p.type === PDU_TYPE.releaseRp) break
      }
      this.#released = true
      this.#s.end()
      this.#s.destroySoon()
    } catch {
      this.abort()
    }
  }

  /** Aborts the association (A-ABORT, PS3.8 7.3.1) and closes the connection. */
  abort(): void {
    this.#released = true
    if (!this.#s.destroyed && this.#s.writable) this.#s.end(encodePdu({ type: PDU_TYPE.abort, source: ABORT.sourceUser, reason: ABORT.reasonNotSpecified }))
    setTimeout(() => this.#s.destroy(), 500).unref()
  }

  #contextOf(abstractSyntax: string): number {
    for (const [id, c] of this.#accepted) if (c.abstractSyntax === abstractSyntax) return id
    throw new DimseError('DIMSE_NO_CONTEXT', `the peer accepted no presentation context for ${abstractSyntax}`, { penalize: false })
  }

  #nextId(): number {
    this.#messageId = (this.#messageId % 0xffff) + 1
    return this.#messageId
  }

  #fail(err: DimseError): void {
    this.#failed ??= err
  }

  #timeoutMs(): number {
    return this.#opts.timeoutMs ?? DEFAULT_SCU_TIMEOUT_MS
  }

  /** The next PDU of the peer, within the timeout. */
  async #nextPdu(what: string): Promise<Pdu> {
    const deadline = Date.now() + this.#timeoutMs()
    for (;;) {
      const p = this.#pdus.shift()
      if (p !== undefined) {
        if (p.type === PDU_TYPE.abort) {
          this.#fail(new DimseError('DIMSE_ABORTED', `the peer aborted the association (source ${p.source}, reason ${p.reason})`, { penalize: false }))
          this.#s.destroy()
        } else return p
      }
      if (this.#failed !== undefined) throw this.#failed
      const left = deadline - Date.now()
      if (left <= 0) {
        const err = new DimseError('DIMSE_TIMEOUT', `no answer from ${this.#opts.calledAe} within ${this.#timeoutMs()} ms (waiting for ${what})`, {
          penalize: false,
        })
        this.#fail(err)
        this.abort()
        throw err
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left)
        this.#wake = () => {
          clearTimeout(t)
          this.#wake = undefined
          resolve()
        }
      })
    }
  }

  /** The next whole DIMSE message answering `messageId`. */
  async #response(messageId: number): Promise<DimseResponse> {
    for (;;) {
      const p = await this.#nextPdu('a DIMSE response')
      if (p.type !== PDU_TYPE.pData) {
        this.abort()
        throw new DimseError('DIMSE_PDU_MALFORMED', `PDU type ${p.type} while a DIMSE response was expected`)
      }
      for (const pdv of p.pdvs) {
        if (pdv.command) {
          this.#cmdParts.push(Uint8Array.from(pdv.data))
          if (this.#cmdParts.reduce((n, x) => n + x.length, 0) > MAX_COMMAND_BYTES)
            throw new DimseError('DIMSE_COMMAND_MALFORMED', 'a response command set too long')
          if (!pdv.last) continue
          const cmd = decodeCommand(Buffer.concat(this.#cmdParts))
          this.#cmdParts = []
          if (cmd.hasDataset) {
            this.#pendingCommand = cmd
            continue
          }
          if (cmd.us(CMD.messageIdBeingRespondedTo) === messageId) return { command: cmd, status: cmd.us(CMD.status) }
          continue
        }
        const cmd = this.#pendingCommand
        if (cmd === undefined) throw new DimseError('DIMSE_PDU_MALFORMED', 'a dataset fragment without its command')
        this.#dataBytes += pdv.data.length
        if (this.#dataBytes > MAX_RESPONSE_DATASET) throw new DimseError('DIMSE_PDU_MALFORMED', 'a response dataset too long')
        this.#dataParts.push(Uint8Array.from(pdv.data))
        if (!pdv.last) continue
        const dataset = Buffer.concat(this.#dataParts)
        this.#dataParts = []
        this.#dataBytes = 0
        this.#pendingCommand = undefined
        if (cmd.us(CMD.messageIdBeingRespondedTo) === messageId) return { command: cmd, status: cmd.us(CMD.status), dataset }
      }
    }
  }

  async #sendCommand(ctx: number, values: ReadonlyMap<number, string | number>): Promise<void> {
    await this.#sendData(ctx, true, encodeCommand(values))
  }

  /** One message part cut into P-DATA-TF PDUs no longer than the peer takes (PS3.8 9.3.5), each written in turn. */
  async #sendData(ctx: number, command: boolean, data: Uint8Array): Promise<void> {
    const max = this.#peerMax === 0 ? MAX_SEND_PDU : Math.min(this.#peerMax, MAX_SEND_PDU)
    // A PDV item adds 6 bytes inside the PDU's variable field; fragments are kept even-sized.
    const room = Math.max(2, (max - 6) & ~1)
    let off = 0
    do {
      const end = Math.min(data.length, off + room)
      await this.#write(encodePdu({ type: PDU_TYPE.pData, pdvs: [{ contextId: ctx, command, last: end === data.length, data: data.subarray(off, end) }] }))
      off = end
    } while (off < data.length)
  }

  /** Writes, waiting for the socket to drain when its buffer is full; a peer that takes nothing for the timeout is aborted. */
  async #write(bytes: Uint8Array): Promise<void> {
    if (this.#failed !== undefined) throw this.#failed
    const s = this.#s
    if (s.destroyed || !s.writable) throw new DimseError('DIMSE_ABORTED', 'the connection is closed', { penalize: false })
    if (s.write(bytes)) return
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        done()
        const err = new DimseError('DIMSE_TIMEOUT', `${this.#opts.calledAe} took nothing of what was sent for ${this.#timeoutMs()} ms`, { penalize: false })
        this.#fail(err)
        this.abort()
        reject(err)
      }, this.#timeoutMs())
      const done = (): void => {
        clearTimeout(t)
        s.off('drain', ok)
        s.off('close', ok)
      }
      const ok = (): void => {
        done()
        resolve()
      }
      s.on('drain', ok)
      s.on('close', ok)
    })
  }
}

/** A-ASSOCIATE-RJ reasons as words (PS3.8 Table 9-21). */
function rejectHint(source: number, reason: number): string {
  if (source === 1 && reason === 3) return ': calling AE title not recognized'
  if (source === 1 && reason === 7) return ': called AE title not recognized'
  if (source === 3 && (reason === 1 || reason === 2)) return ': the peer is busy'
  return ''
}
