import { DimseError } from './errors.js'

// The DICOM upper layer protocol's PDUs (PS3.8 9.3): a 6-byte header (type,
// reserved, 32-bit big-endian length) and a variable field. Multi-byte
// integers of the PDUs are big endian (PS3.8 9.3.1); the DIMSE messages they
// carry are little endian (PS3.7 6.3.1).

/** PDU types (PS3.8 Table 9-1 and 9.3). */
export const PDU_TYPE = {
  associateRq: 0x01,
  associateAc: 0x02,
  associateRj: 0x03,
  pData: 0x04,
  releaseRq: 0x05,
  releaseRp: 0x06,
  abort: 0x07,
} as const

/** The DICOM Application Context Name (PS3.7 A.2.1). */
export const APPLICATION_CONTEXT = '1.2.840.10008.3.1.1.1'

/** Bytes of a PDU header: type, reserved, 4-byte length (PS3.8 9.3.1). */
export const PDU_HEADER_BYTES = 6

/** Presentation context results of an A-ASSOCIATE-AC (PS3.8 Table 9-18). */
export const PC_RESULT = {
  acceptance: 0,
  userRejection: 1,
  noReason: 2,
  abstractSyntaxNotSupported: 3,
  transferSyntaxesNotSupported: 4,
} as const

/** A-ASSOCIATE-RJ fields (PS3.8 Table 9-21): result, source, and the reasons by source. */
export const REJECT = {
  resultPermanent: 1,
  resultTransient: 2,
  /** Source 1, DICOM UL service-user. */
  sourceUser: 1,
  /** Source 2, DICOM UL service-provider (ACSE related function). */
  sourceAcse: 2,
  /** Source 3, DICOM UL service-provider (presentation related function). */
  sourcePresentation: 3,
  userNoReason: 1,
  userApplicationContextNotSupported: 2,
  userCallingAeNotRecognized: 3,
  userCalledAeNotRecognized: 7,
  acseProtocolVersionNotSupported: 2,
  presentationTemporaryCongestion: 1,
  presentationLocalLimitExceeded: 2,
} as const

/** A-ABORT fields (PS3.8 Table 9-26): source, and the provider's reasons. */
export const ABORT = {
  sourceUser: 0,
  sourceProvider: 2,
  reasonNotSpecified: 0,
  reasonUnrecognizedPdu: 1,
  reasonUnexpectedPdu: 2,
  reasonUnrecognizedParameter: 4,
  reasonUnexpectedParameter: 5,
  reasonInvalidParameter: 6,
} as const

/** One proposed presentation context (PS3.8 9.3.2.2). */
export interface ProposedContext {
  readonly id: number
  readonly abstractSyntax: string
  readonly transferSyntaxes: readonly string[]
}

/** One presentation context answer (PS3.8 9.3.3.2); `transferSyntax` is meaningful on acceptance only. */
export interface ContextAnswer {
  readonly id: number
  readonly result: number
  readonly transferSyntax: string
}

/** SCP/SCU Role Selection sub-item (PS3.7 D.3.3.4). */
export interface RoleSelection {
  readonly sopClass: string
  readonly scu: boolean
  readonly scp: boolean
}

/** User Information item (PS3.8 D.1, PS3.7 D.3.3): the sub-items radchain reads, the rest kept as they came. */
export interface UserInformation {
  /** Maximum Length Received (PS3.8 D.1): 0 means no limit. */
  readonly maxPduLength: number
  readonly implementationClassUid: string
  readonly implementationVersionName?: string
  /** Asynchronous Operations Window (PS3.7 D.3.3.3): invoked and performed. */
  readonly asyncOps?: { readonly invoked: number; readonly performed: number }
  readonly roles?: readonly RoleSelection[]
  /** Sub-items radchain does not interpret (extended negotiation, user identity), by type. */
  readonly other?: readonly { readonly type: number; readonly value: Uint8Array }[]
}

/** A-ASSOCIATE-RQ (PS3.8 9.3.2). */
export interface AssociateRq {
  readonly type: typeof PDU_TYPE.associateRq
  readonly protocolVersion: number
  readonly calledAe: string
  readonly callingAe: string
  readonly applicationContext: string
  readonly contexts: readonly ProposedContext[]
  readonly userInfo: UserInformation
}

/** A-ASSOCIATE-AC (PS3.8 9.3.3). */
export interface AssociateAc {
  readonly type: typeof PDU_TYPE.associateAc
  readonly protocolVersion: number
  readonly calledAe: string
  readonly callingAe: string
  readonly applicationContext: string
  readonly contexts: readonly ContextAnswer[]
  readonly userInfo: UserInformation
}

/** A-ASSOCIATE-RJ (PS3.8 9.3.4). */
export interface AssociateRj {
  readonly type: typeof PDU_TYPE.associateRj
  readonly result: number
  readonly source: number
  readonly reason: number
}

/** One Presentation Data Value (PS3.8 9.3.5.1, E.2): the message control header's command and last-fragment bits. */
export interface Pdv {
  readonly contextId: number
  readonly command: boolean
  readonly last: boolean
  readonly data: Uint8Array
}

/** P-DATA-TF (PS3.8 9.3.5). */
export interface PData {
  readonly type: typeof PDU_TYPE.pData
  readonly pdvs: readonly Pdv[]
}

/** A-RELEASE-RQ and A-RELEASE-RP (PS3.8 9.3.6, 9.3.7). */
export interface Release {
  readonly type: typeof PDU_TYPE.releaseRq | typeof PDU_TYPE.releaseRp
}

/** A-ABORT (PS3.8 9.3.8). */
export interface Abort {
  readonly type: typeof PDU_TYPE.abort
  readonly source: number
  readonly reason: number
}

/** Any PDU. */
export type Pdu = AssociateRq | AssociateAc | AssociateRj | PData | Release | Abort

// Item types inside A-ASSOCIATE PDUs (PS3.8 9.3.2.1-9.3.3.3, D.1, PS3.7 D.3.3).
const ITEM = {
  applicationContext: 0x10,
  contextRq: 0x20,
  contextAc: 0x21,
  abstractSyntax: 0x30,
  transferSyntax: 0x40,
  userInfo: 0x50,
  maxLength: 0x51,
  implementationClassUid: 0x52,
  asyncOps: 0x53,
  roleSelection: 0x54,
  implementationVersionName: 0x55,
} as const

/** Longest UID (PS3.5 9.1) and AE title (PS3.5 6.2). */
const UID_MAX = 64
const AE_MAX = 16

function malformed(what: string): DimseError {
  return new DimseError('DIMSE_PDU_MALFORMED', what)
}

/** ASCII text of a field, with the padding PS3.8 allows (trailing NUL or spaces, leading spaces for AE titles) removed. */
function text(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength)
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
}

function checkUid(uid: string, what: string): string {
  if (uid.length === 0 || uid.length > UID_MAX || !/^[0-9.]+$/.test(uid)) throw malformed(`${what} is not a UID`)
  return uid
}

/** The items of an A-ASSOCIATE variable field or sub-item list: type, reserved, 16-bit length, value. */
function items(b: Uint8Array, what: string): { type: number; value: Uint8Array }[] {
  const out: { type: number; value: Uint8Array }[] = []
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength)
  let off = 0
  while (off < b.length) {
    if (off + 4 > b.length) throw malformed(`${what}: an item header is cut short`)
    const type = b[off] as number
    const len = v.getUint16(off + 2)
    if (off + 4 + len > b.length) throw malformed(`${what}: item 0x${type.toString(16)} runs past its PDU`)
    out.push({ type, value: b.subarray(off + 4, off + 4 + len) })
    off += 4 + len
  }
  return out
}

function decodeUserInfo(b: Uint8Array): UserInformation {
  let maxPduLength: number | undefined
  let implementationClassUid: string | undefined
  let implementationVersionName: string | undefined
  let asyncOps: { invoked: number; performed: number } | undefined
  const roles: RoleSelection[] = []
  const other: { type: number; value: Uint8Array }[] = []
  for (const it of items(b, 'user information')) {
    const v = new DataView(it.value.buffer, it.value.byteOffset, it.value.byteLength)
    switch (it.type) {
      case ITEM.maxLength:
        if (it.value.length !== 4) throw malformed('maximum length sub-item is not 4 bytes')
        maxPduLength = v.getUint32(0)
        break
      case ITEM.implementationClassUid:
        implementationClassUid = checkUid(text(it.value), 'implementation class UID')
        break
      case ITEM.implementationVersionName:
        if (it.value.length > 16) throw malformed('implementation version name is longer than 16 bytes')
        implementationVersionName = text(it.value)
        break
      case ITEM.asyncOps:
        if (it.value.length !== 4) throw malformed('asynchronous operations window sub-item is not 4 bytes')
        asyncOps = { invoked: v.getUint16(0), performed: v.getUint16(2) }
        break
      case ITEM.roleSelection: {
        if (it.value.length < 4) throw malformed('role selection sub-item cut short')
        const n = v.getUint16(0)
        if (2 + n + 2 !== it.value.length) throw malformed('role selection sub-item length disagrees with its UID length')
        roles.push({
          sopClass: checkUid(text(it.value.subarray(2, 2 + n)), 'role selection SOP class'),
          scu: it.value[2 + n] === 1,
          scp: it.value[3 + n] === 1,
        })
        break
      }
      default:
        other.push({ type: it.type, value: it.value })
    }
  }
  if (maxPduLength === undefined) throw malformed('user information has no maximum length sub-item')
  if (implementationClassUid === undefined) throw malformed('user information has no implementation class UID')
  return {
    maxPduLength,
    implementationClassUid,
    ...(implementationVersionName === undefined ? {} : { implementationVersionName }),
    ...(asyncOps === undefined ? {} : { asyncOps }),
    ...(roles.length === 0 ? {} : { roles }),
    ...(other.length === 0 ? {} : { other }),
  }
}

function decodeAssociate(type: 1 | 2, body: Uint8Array): AssociateRq | AssociateAc {
  if (body.length < 68) throw malformed('A-ASSOCIATE PDU shorter than its fixed fields')
  const v = new DataView(body.buffer, body.byteOffset, body.byteLength)
  const protocolVersion = v.getUint16(0)
  const calledAe = text(body.subarray(4, 20)).trimStart()
  const callingAe = text(body.subarray(20, 36)).trimStart()
  let applicationContext: string | undefined
  let userInfo: UserInformation | undefined
  const proposed: ProposedContext[] = []
  const answers: ContextAnswer[] = []
  for (const it of items(body.subarray(68), 'A-ASSOCIATE')) {
    if (it.type === ITEM.applicationContext) applicationContext = checkUid(text(it.value), 'application context name')
    else if (it.type === ITEM.userInfo) userInfo = decodeUserInfo(it.value)
    else if (it.type === ITEM.contextRq && type === 1) {
      if (it.value.length < 4) throw malformed('presentation context item cut short')
      const id = it.value[0] as number
      let abstractSyntax: string | undefined
      const transferSyntaxes: string[] = []
      for (const sub of items(it.value.subarray(4), 'presentation context')) {
        if (sub.type === ITEM.abstractSyntax) {
          if (abstractSyntax !== undefined) throw malformed('presentation context with two abstract syntaxes')
          abstractSyntax = checkUid(text(sub.value), 'abstract syntax')
        } else if (sub.type === ITEM.transferSyntax) transferSyntaxes.push(checkUid(text(sub.value), 'transfer syntax'))
        else throw malformed(`unknown presentation context sub-item 0x${sub.type.toString(16)}`)
      }
      if (abstractSyntax === undefined || transferSyntaxes.length === 0) throw malformed('presentation context without abstract or transfer syntax')
      proposed.push({ id, abstractSyntax, transferSyntaxes })
    } else if (it.type === ITEM.contextAc && type === 2) {
      if (it.value.length < 4) throw malformed('presentation context item cut short')
      const subs = items(it.value.subarray(4), 'presentation context')
      const ts = subs.find((s) => s.type === ITEM.transferSyntax)
      answers.push({ id: it.value[0] as number, result: it.value[2] as number, transferSyntax: ts === undefined ? '' : text(ts.value) })
    } else throw malformed(`unknown A-ASSOCIATE item 0x${it.type.toString(16)}`)
  }
  if (applicationContext === undefined) throw malformed('A-ASSOCIATE without an application context')
  if (userInfo === undefined) throw malformed('A-ASSOCIATE without user information')
  const common = { protocolVersion, calledAe, callingAe, applicationContext, userInfo }
  return type === 1 ? { type: PDU_TYPE.associateRq, ...common, contexts: proposed } : { type: PDU_TYPE.associateAc, ...common, contexts: answers }
}

function decodePData(body: Uint8Array): PData {
  const v = new DataView(body.buffer, body.byteOffset, body.byteLength)
  const pdvs: Pdv[] = []
  let off = 0
  while (off < body.length) {
    if (off + 6 > body.length) throw malformed('a PDV header is cut short')
    const len = v.getUint32(off)
    // The item length counts the context id and the control header (PS3.8 9.3.5.1).
    if (len < 2 || off + 4 + len > body.length) throw malformed('a PDV runs past its P-DATA-TF PDU')
    const ctl = body[off + 5] as number
    if ((ctl & 0xfc) !== 0) throw malformed('a PDV message control header has reserved bits set')
    pdvs.push({ contextId: body[off + 4] as number, command: (ctl & 1) === 1, last: (ctl & 2) === 2, data: body.subarray(off + 6, off + 4 + len) })
    off += 4 + len
  }
  if (pdvs.length === 0) throw malformed('a P-DATA-TF PDU without a PDV')
  return { type: PDU_TYPE.pData, pdvs }
}

/** Decodes the variable field of a PDU of `type` (PS3.8 9.3). Throws DIMSE_PDU_MALFORMED. */
export function decodePdu(type: number, body: Uint8Array): Pdu {
  switch (type) {
    case PDU_TYPE.associateRq:
    case PDU_TYPE.associateAc:
      return decodeAssociate(type, body)
    case PDU_TYPE.associateRj:
      if (body.length !== 4) throw malformed('A-ASSOCIATE-RJ is not 4 bytes')
      return { type, result: body[1] as number, source: body[2] as number, reason: body[3] as number }
    case PDU_TYPE.pData:
      return decodePData(body)
    case PDU_TYPE.releaseRq:
    case PDU_TYPE.releaseRp:
      if (body.length !== 4) throw malformed('A-RELEASE PDU is not 4 bytes')
      return { type }
    case PDU_TYPE.abort:
      if (body.length !== 4) throw malformed('A-ABORT is not 4 bytes')
      return { type, source: body[2] as number, reason: body[3] as number }
    default:
      throw malformed(`unknown PDU type 0x${type.toString(16)}`)
  }
}

/** Reassembles PDUs from a byte stream, refusing any longer than `maxLength` (the variable field) before buffering it. */
export class PduReader {
  /** The longest variable field taken; may be lowered once an association is established. */
  maxLength: number
  #chunks: Uint8Array[] = []
  #buffered = 0

  constructor(maxLength: number) {
    this.maxLength = maxLength
  }

  /** Bytes held that do not yet make a whole PDU. */
  get buffered(): number {
    return this.#buffered
  }

  /** Adds bytes read from the peer. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return
    this.#chunks.push(chunk)
    this.#buffered += chunk.length
  }

  /**
   * The next whole PDU's type and variable field, or undefined until more
   * bytes come. Throws DIMSE_PDU_TOO_LARGE for a declared length above the
   * bound (before reading it), DIMSE_PDU_MALFORMED for an unknown type.
   */
  next(): { type: number; body: Uint8Array } | undefined {
    if (this.#buffered < PDU_HEADER_BYTES) return undefined
    const head = this.#peek(PDU_HEADER_BYTES)
    const type = head[0] as number
    if (type < PDU_TYPE.associateRq || type > PDU_TYPE.abort) throw malformed(`unknown PDU type 0x${type.toString(16)}`)
    const len = new DataView(head.buffer, head.byteOffset, head.byteLength).getUint32(2)
    if (len > this.maxLength) throw new DimseError('DIMSE_PDU_TOO_LARGE', `a PDU of ${len} bytes, above the ${this.maxLength} this node takes`)
    if (this.#buffered < PDU_HEADER_BYTES + len) return undefined
    const all = this.#take(PDU_HEADER_BYTES + len)
    return { type, body: all.subarray(PDU_HEADER_BYTES) }
  }

  /** The first `n` bytes (joining chunks only as needed). */
  #peek(n: number): Uint8Array {
    const first = this.#chunks[0] as Uint8Array
    if (first.length >= n) return first.subarray(0, n)
    const joined = Buffer.concat(this.#chunks)
    this.#chunks = [joined]
    return joined.subarray(0, n)
  }

  #take(n: number): Uint8Array {
    const first = this.#chunks[0] as Uint8Array
    let out: Uint8Array
    if (first.length >= n) {
      out = first.subarray(0, n)
      if (first.length === n) this.#chunks.shift()
      else this.#chunks[0] = first.subarray(n)
    } else {
      const joined = Buffer.concat(this.#chunks)
      out = joined.subarray(0, n)
      this.#chunks = joined.length > n ? [joined.subarray(n)] : []
    }
    this.#buffered -= n
    return out
  }
}

// Encoding.

function pdu(type: number, body: Uint8Array): Uint8Array {
  const out = Buffer.alloc(PDU_HEADER_BYTES + body.length)
  out[0] = type
  out.writeUInt32BE(body.length, 2)
  out.set(body, PDU_HEADER_BYTES)
  return out
}

function item(type: number, value: Uint8Array): Buffer {
  if (value.length > 0xffff) throw new RangeError(`item 0x${type.toString(16)} longer than 65535 bytes`)
  const out = Buffer.alloc(4 + value.length)
  out[0] = type
  out.writeUInt16BE(value.length, 2)
  out.set(value, 4)
  return out
}

const ascii = (s: string): Buffer => Buffer.from(s, 'latin1')

/** An AE title field: 16 bytes, space padded (PS3.8 9.3.2). */
function aeField(ae: string): Buffer {
  if (ae.length > AE_MAX) throw new RangeError('AE title longer than 16 characters')
  return ascii(ae.padEnd(AE_MAX, ' '))
}

function encodeUserInfo(u: UserInformation): Buffer {
  const max = Buffer.alloc(4)
  max.writeUInt32BE(u.maxPduLength)
  const subs = [item(ITEM.maxLength, max), item(ITEM.implementationClassUid, ascii(u.implementationClassUid))]
  if (u.asyncOps !== undefined) {
    const a = Buffer.alloc(4)
    a.writeUInt16BE(u.asyncOps.invoked)
    a.writeUInt16BE(u.asyncOps.performed, 2)
    subs.push(item(ITEM.asyncOps, a))
  }
  for (const r of u.roles ?? []) {
    const uid = ascii(r.sopClass)
    const b = Buffer.alloc(4 + uid.length)
    b.writeUInt16BE(uid.length)
    b.set(uid, 2)
    b[2 + uid.length] = r.scu ? 1 : 0
    b[3 + uid.length] = r.scp ? 1 : 0
    subs.push(item(ITEM.roleSelection, b))
  }
  if (u.implementationVersionName !== undefined) subs.push(item(ITEM.implementationVersionName, ascii(u.implementationVersionName)))
  for (const o of u.other ?? []) subs.push(item(o.type, o.value))
  return item(ITEM.userInfo, Buffer.concat(subs))
}

function encodeAssociate(p: AssociateRq | AssociateAc): Uint8Array {
  const fixed = Buffer.alloc(68)
  fixed.writeUInt16BE(p.protocolVersion)
  aeField(p.calledAe).copy(fixed, 4)
  aeField(p.callingAe).copy(fixed, 20)
  const parts: Buffer[] = [fixed, item(ITEM.applicationContext, ascii(p.applicationContext))]
  if (p.type === PDU_TYPE.associateRq) {
    for (const c of p.contexts) {
      const subs = [item(ITEM.abstractSyntax, ascii(c.abstractSyntax)), ...c.transferSyntaxes.map((ts) => item(ITEM.transferSyntax, ascii(ts)))]
      parts.push(item(ITEM.contextRq, Buffer.concat([Buffer.from([c.id, 0, 0, 0]), ...subs])))
    }
  } else {
    for (const c of p.contexts) {
      // A rejected context still carries one transfer syntax sub-item, whose value is not significant (PS3.8 9.3.3.2).
      parts.push(item(ITEM.contextAc, Buffer.concat([Buffer.from([c.id, 0, c.result, 0]), item(ITEM.transferSyntax, ascii(c.transferSyntax))])))
    }
  }
  parts.push(encodeUserInfo(p.userInfo))
  return pdu(p.type, Buffer.concat(parts))
}

/** Encodes a PDU (PS3.8 9.3). */
export function encodePdu(p: Pdu): Uint8Array {
  switch (p.type) {
    case PDU_TYPE.associateRq:
    case PDU_TYPE.associateAc:
      return encodeAssociate(p)
    case PDU_TYPE.associateRj:
      return pdu(p.type, Uint8Array.of(0, p.result, p.source, p.reason))
    case PDU_TYPE.pData: {
      const parts: Buffer[] = []
      for (const v of p.pdvs) {
        const h = Buffer.alloc(6)
        h.writeUInt32BE(v.data.length + 2)
        h[4] = v.contextId
        h[5] = (v.command ? 1 : 0) | (v.last ? 2 : 0)
        parts.push(h, Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength))
      }
      return pdu(p.type, Buffer.concat(parts))
    }
    case PDU_TYPE.releaseRq:
    case PDU_TYPE.releaseRp:
      return pdu(p.type, new Uint8Array(4))
    case PDU_TYPE.abort:
      return pdu(p.type, Uint8Array.of(0, 0, p.source, p.reason))
  }
}

/**
 * P-DATA-TF PDUs carrying one message part (command or dataset) cut into
 * PDVs so that no PDU is longer than `maxPduLength` (the peer's Maximum
 * Length Received; 0: no limit), the last fragment flagged (PS3.8 9.3.5, E.2).
 */
export function fragmentPData(contextId: number, command: boolean, data: Uint8Array, maxPduLength: number): Uint8Array[] {
  // A PDV item's header is 6 bytes inside the PDU's variable field; keep fragments even-sized.
  const room = maxPduLength === 0 ? Math.max(data.length, 2) : Math.max(2, (maxPduLength - 6) & ~1)
  const out: Uint8Array[] = []
  let off = 0
  do {
    const end = Math.min(data.length, off + room)
    out.push(encodePdu({ type: PDU_TYPE.pData, pdvs: [{ contextId, command, last: end === data.length, data: data.subarray(off, end) }] }))
    off = end
  } while (off < data.length)
  return out
}
