import { errorMessage, isRadError, type Logger } from '../util/index.js'
import type { DimseBackend, DimsePeer } from './backend.js'
import { DimseClient, type ContextProposal } from './client.js'
import { CMD, COMMAND_FIELD, NO_DATASET, STATUS, type Command } from './command.js'
import { decodeIdentifier, encodeIdentifier } from './identifier.js'
import { ACCEPTED_TRANSFER_SYNTAXES } from './negotiate.js'
import { splitPart10 } from './part10.js'
import { findResponse, parseQuery, type DimseQuery } from './query.js'
import type { DimseServerOpts } from './server.js'

/** One C-FIND or C-MOVE request as the association hands it over. */
export interface QrContext {
  readonly contextId: number
  readonly messageId: number
  readonly abstractSyntax: string
  readonly transferSyntax: string
  readonly command: Command
  /** The identifier's bytes; undefined when the request had none. */
  readonly identifier: Uint8Array | undefined
  readonly peer: DimsePeer
  readonly backend: DimseBackend
  readonly opts: DimseServerOpts
  readonly log: Logger
  /** Aborted by a C-CANCEL, or when the association ends. */
  readonly signal: AbortSignal
  /** Sends a response: its command elements and identifier. */
  send(values: ReadonlyMap<number, string | number>, dataset: Uint8Array | undefined): Promise<void>
}

/** C-STORE statuses that are warnings (PS3.4 B.2.3): Coercion of Data Elements, Elements Discarded, Data Set does not match SOP Class. */
const STORE_WARNINGS = new Set([0xb000, 0xb006, 0xb007])
/** Presentation contexts an association may propose (PS3.8 9.3.2.2). */
const MAX_CONTEXTS = 128
const EXPLICIT_LE = '1.2.840.10008.1.2.1'
const IMPLICIT_LE = '1.2.840.10008.1.2'

function response(qr: QrContext, field: number, status: number, extra: [number, string | number][] = [], hasDataset = false): Map<number, string | number> {
  return new Map<number, string | number>([
    [CMD.affectedSopClassUid, qr.abstractSyntax],
    [CMD.commandField, field],
    [CMD.messageIdBeingRespondedTo, qr.messageId],
    [CMD.dataSetType, hasDataset ? 0x0000 : NO_DATASET],
    [CMD.status, status],
    ...extra,
  ])
}

/** The identifier read and its query, or the refusal to answer with. */
function readQuery(qr: QrContext): { ds: ReturnType<typeof decodeIdentifier>; q: DimseQuery } | { status: number; comment: string } {
  if (qr.identifier === undefined) return { status: STATUS.cannotUnderstand, comment: 'no identifier' }
  let ds
  try {
    ds = decodeIdentifier(qr.identifier, qr.transferSyntax)
  } catch (err) {
    return { status: STATUS.cannotUnderstand, comment: errorMessage(err).slice(0, 64) }
  }
  const q = parseQuery(ds)
  return 'level' in q ? { ds, q } : q
}

/**
 * Answers a C-FIND (PS3.4 C.4.1.2.1, C.4.1.3): one Pending response
 * (0xFF00) per match with its identifier, then Success; Cancel (0xFE00)
 * once a C-CANCEL came; 0xA900 for an identifier without a level the SCP
 * serves or a key whose value does not suit its VR, 0xC000 for one that
 * cannot be read.
 */
export async function runFind(qr: QrContext): Promise<void> {
  const rsp = COMMAND_FIELD.cFindRsp
  const read = readQuery(qr)
  if (!('q' in read)) {
    await qr.send(response(qr, rsp, read.status, [[CMD.errorComment, read.comment.slice(0, 64)]]), undefined)
    return
  }
  const found = await qr.backend.find(qr.peer, read.q, qr.signal)
  if (!found.ok) {
    await qr.send(response(qr, rsp, found.status, [[CMD.errorComment, found.comment.slice(0, 64)]]), undefined)
    return
  }
  for (const m of found.matches) {
    // A turn of the event loop before each answer: a C-CANCEL already on its way is read before more is sent.
    await new Promise<void>((resolve) => setImmediate(resolve))
    if (qr.signal.aborted) {
      await qr.send(response(qr, rsp, STATUS.cancel), undefined)
      return
    }
    const ds = findResponse(read.ds, read.q.level, m, qr.opts.aeTitle)
    await qr.send(response(qr, rsp, STATUS.pending, [], true), encodeIdentifier(ds, qr.transferSyntax))
  }
  await qr.send(response(qr, rsp, qr.signal.aborted ? STATUS.cancel : STATUS.success), undefined)
}

/**
 * Presentation contexts for C-STORE sub-operations: each SOP class with each
 * transfer syntax the node stores, one per context (the instance goes over
 * the one of its own transfer syntax; nothing is transcoded). With too many
 * SOP classes for 128 contexts, the uncompressed syntaxes only.
 */
export function storageProposals(sopClasses: readonly string[]): ContextProposal[] {
  const all = sopClasses.length * ACCEPTED_TRANSFER_SYNTAXES.length <= MAX_CONTEXTS ? ACCEPTED_TRANSFER_SYNTAXES : [EXPLICIT_LE, IMPLICIT_LE]
  const out: ContextProposal[] = []
  for (const c of sopClasses) for (const ts of all) if (out.length < MAX_CONTEXTS) out.push({ abstractSyntax: c, transferSyntaxes: [ts] })
  return out
}

/** Counts of C-STORE sub-operations (PS3.4 C.4.2.1.5). */
export interface SubOperationCounts {
  completed: number
  failed: number
  warning: number
}

/**
 * Sends instances to a peer with C-STORE over one association: each over
 * the context of its SOP class and transfer syntax; `onEach` is told each
 * result as it comes. An instance with no accepted context fails alone; an
 * association that breaks fails the rest. Returns the counts and the SOP
 * Instance UIDs that failed.
 */
export async function storeAll(
  client: DimseClient,
  instances: AsyncIterable<Uint8Array>,
  opts: {
    readonly signal: AbortSignal
    readonly moveOriginator?: { readonly ae: string; readonly messageId: number }
    onEach?(
      r: { readonly sopInstanceUid: string; readonly status: number; readonly comment?: string },
      counts: Readonly<SubOperationCounts>,
    ): Promise<void> | void
  },
): Promise<SubOperationCounts & { failedUids: string[]; cancelled: boolean; broken: DimseClientError | undefined }> {
  const counts = { completed: 0, failed: 0, warning: 0 }
  const failedUids: string[] = []
  let cancelled = false
  let broken: DimseClientError | undefined
  try {
    for await (const part10 of instances) {
      if (opts.signal.aborted) {
        cancelled = true
        break
      }
      let sop = ''
      let status: number
      let comment: string | undefined
      try {
        const inst = splitPart10(part10)
        sop = inst.sopInstanceUid
        const r = await client.store({ ...inst, ...(opts.moveOriginator === undefined ? {} : { moveOriginator: opts.moveOriginator }) })
        status = r.status
        comment = r.comment
      } catch (err) {
        status = STATUS.processingFailure
        comment = errorMessage(err).slice(0, 64)
        if (isRadError(err) && err.code !== 'DIMSE_NO_CONTEXT') broken = { code: err.code, message: errorMessage(err) }
        else if (!isRadError(err)) comment = 'not a readable instance'
      }
      if (status === STATUS.success) counts.completed++
      else if (STORE_WARNINGS.has(status)) counts.warning++
      else {
        counts.failed++
        if (sop !== '') failedUids.push(sop)
      }
      await opts.onEach?.({ sopInstanceUid: sop, status, ...(comment === undefined ? {} : { comment }) }, counts)
      if (broken !== undefined) break
    }
  } catch (err) {
    // The instances could not be read (a lease that ended meanwhile, a chunk missing): what is left fails.
    if (opts.signal.aborted) cancelled = true
    else broken = { code: isRadError(err) ? err.code : 'error', message: errorMessage(err) }
  }
  return { ...counts, failedUids, cancelled, broken }
}

/** Why an association broke, as the sender reports it. */
export interface DimseClientError {
  readonly code: string
  readonly message: string
}

/**
 * Performs a C-MOVE (PS3.4 C.4.2.2, C.4.2.3): the Move Destination must be
 * a configured peer (else 0xA801); the node opens its own association to it
 * (calling AE: its own), sends each selected instance with a C-STORE
 * sub-operation, answers Pending with the remaining, completed, failed and
 * warning counts after each, and ends with Success, 0xB000 (some failed or
 * warned, the Failed SOP Instance UID List in the identifier), 0xA702 (none
 * could be sent), or Cancel (0xFE00) after a C-CANCEL.
 */
export async function runMove(qr: QrContext): Promise<void> {
  const rsp = COMMAND_FIELD.cMoveRsp
  const refuse = (status: number, comment: string): Promise<void> => qr.send(response(qr, rsp, status, [[CMD.errorComment, comment.slice(0, 64)]]), undefined)
  const destAe = qr.command.text(CMD.moveDestination) ?? ''
  const dest = destAe === '' ? undefined : await qr.backend.destination(destAe)
  if (dest === undefined) return refuse(STATUS.moveDestinationUnknown, 'Move Destination unknown')
  const read = readQuery(qr)
  if (!('q' in read)) return refuse(read.status, read.comment)
  const sel = await qr.backend.retrieve(qr.peer, read.q, qr.signal)
  if (!sel.ok) return refuse(sel.status, sel.comment)
  const final = async (status: number, c: SubOperationCounts, failedUids: readonly string[], remaining?: number): Promise<void> => {
    const extra: [number, string | number][] = [
      [CMD.completed, c.completed],
      [CMD.failed, c.failed],
      [CMD.warning, c.warning],
    ]
    if (remaining !== undefined) extra.push([CMD.remaining, remaining])
    // The Failed SOP Instance UID List (0008,0058) names what failed (PS3.4 C.4.2.1.5).
    const ds = failedUids.length === 0 ? undefined : encodeIdentifier({ '00080058': { vr: 'UI', Value: [...failedUids] } }, qr.transferSyntax)
    await qr.send(response(qr, rsp, status, extra, ds !== undefined), ds)
  }
  const zero = { completed: 0, failed: 0, warning: 0 }
  if (sel.total === 0) return final(STATUS.success, zero, [])
  let client: DimseClient
  try {
    client = await DimseClient.associate({
      host: dest.host,
      port: dest.port,
      callingAe: qr.opts.aeTitle,
      calledAe: dest.aeTitle,
      contexts: storageProposals(sel.sopClasses),
      implementationClassUid: qr.opts.implementationClassUid,
      implementationVersionName: qr.opts.implementationVersionName,
      signal: qr.signal,
      ...(qr.opts.scuTimeoutMs === undefined ? {} : { timeoutMs: qr.opts.scuTimeoutMs }),
    })
  } catch (err) {
    qr.log.warn('dimse: the move destination could not be reached', {
      destination: dest.aeTitle,
      code: isRadError(err) ? err.code : undefined,
      err: errorMessage(err),
    })
    return final(STATUS.subOperationsRefused, { ...zero, failed: sel.total }, [])
  }
  let done = 0
  const r = await storeAll(client, sel.instances, {
    signal: qr.signal,
    moveOriginator: { ae: qr.peer.callingAe, messageId: qr.messageId },
    onEach: async (_, c) => {
      done++
      if (done >= sel.total) return
      await qr.send(
        response(qr, rsp, STATUS.pending, [
          [CMD.remaining, sel.total - done],
          [CMD.completed, c.completed],
          [CMD.failed, c.failed],
          [CMD.warning, c.warning],
        ]),
        undefined,
      )
    },
  }).finally(() => client.release())
  if (r.cancelled) return final(STATUS.cancel, r, r.failedUids, sel.total - done)
  // What the broken association did not send failed too.
  const failed = r.failed + (sel.total - done)
  const counts = { completed: r.completed, failed, warning: r.warning }
  if (r.broken !== undefined) qr.log.warn('dimse: a move broke off', { destination: dest.aeTitle, code: r.broken.code, err: r.broken.message })
  qr.log.info('dimse: move done', { destination: dest.aeTitle, calling: qr.peer.callingAe, ...counts })
  const status =
    failed === 0 && r.warning === 0 ? STATUS.success : r.completed === 0 && r.warning === 0 ? STATUS.subOperationsRefused : STATUS.subOperationsWarning
  return final(status, counts, r.failedUids)
}
