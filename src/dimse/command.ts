import { DimseError } from './errors.js'

// DIMSE command sets (PS3.7 6.3, 9.3, E.1): group 0000 elements, always
// Implicit VR Little Endian, whatever transfer syntax the presentation
// context negotiated for its dataset.

/** Command Field values (PS3.7 E.1-1) radchain reads or writes. */
export const COMMAND_FIELD = {
  cStoreRq: 0x0001,
  cStoreRsp: 0x8001,
  cEchoRq: 0x0030,
  cEchoRsp: 0x8030,
  cFindRq: 0x0020,
  cFindRsp: 0x8020,
  cMoveRq: 0x0021,
  cMoveRsp: 0x8021,
  cGetRq: 0x0010,
  cGetRsp: 0x8010,
  cCancelRq: 0x0fff,
} as const

/** Command Data Set Type (0000,0800) meaning "no dataset" (PS3.7 E.1-1); any other value means a dataset follows. */
export const NO_DATASET = 0x0101

/** DIMSE statuses (PS3.7 Annex C, PS3.4 B.2.3) radchain answers with. */
export const STATUS = {
  success: 0x0000,
  /** Refused: Out of Resources (PS3.4 B.2.3). */
  outOfResources: 0xa700,
  /** Error: Data Set does not match SOP Class (PS3.4 B.2.3). */
  datasetMismatch: 0xa900,
  /** Error: Cannot understand (PS3.4 B.2.3). */
  cannotUnderstand: 0xc000,
  /** Failure: Processing failure (PS3.7 C.4.2). */
  processingFailure: 0x0110,
  /** Failure: Duplicate SOP Instance (PS3.7 C.5). */
  duplicateSopInstance: 0x0111,
  /** Failure: Refused: SOP Class not supported (PS3.7 C.5.8). */
  sopClassNotSupported: 0x0122,
  /** Failure: Unrecognized operation (PS3.7 C.5.5). */
  unrecognizedOperation: 0x0211,
  /** Pending: matches are continuing (PS3.4 C.4.1.1.4); sub-operations are continuing (C.4.2.1.5, C.4.3.1.4). */
  pending: 0xff00,
  /** Cancel: matching or sub-operations terminated due to a C-CANCEL (PS3.4 C.4.1.1.4). */
  cancel: 0xfe00,
  /** Refused: Out of Resources – Unable to calculate number of matches (PS3.4 C.4.2.1.5). */
  unableToCountMatches: 0xa701,
  /** Refused: Out of Resources – Unable to perform sub-operations (PS3.4 C.4.2.1.5). */
  subOperationsRefused: 0xa702,
  /** Refused: Move Destination unknown (PS3.4 C.4.2.1.5). */
  moveDestinationUnknown: 0xa801,
  /** Warning: Sub-operations Complete – One or more Failures or Warnings (PS3.4 C.4.2.1.5). */
  subOperationsWarning: 0xb000,
} as const

/** Command element tags (group 0000, PS3.7 E.1-1) as numbers: group << 16 | element. */
export const CMD = {
  groupLength: 0x00000000,
  affectedSopClassUid: 0x00000002,
  commandField: 0x00000100,
  messageId: 0x00000110,
  messageIdBeingRespondedTo: 0x00000120,
  priority: 0x00000700,
  dataSetType: 0x00000800,
  status: 0x00000900,
  errorComment: 0x00000902,
  affectedSopInstanceUid: 0x00001000,
  moveDestination: 0x00000600,
  remaining: 0x00001020,
  completed: 0x00001021,
  failed: 0x00001022,
  warning: 0x00001023,
  moveOriginatorAe: 0x00001030,
  moveOriginatorMessageId: 0x00001031,
} as const

/** How a command element's value is held: text (UI, AE, LO: padded to even length), 16-bit or 32-bit unsigned. */
type Kind = 'uid' | 'text' | 'us' | 'ul'

const KIND: ReadonlyMap<number, Kind> = new Map<number, Kind>([
  [CMD.groupLength, 'ul'],
  [CMD.affectedSopClassUid, 'uid'],
  [CMD.commandField, 'us'],
  [CMD.messageId, 'us'],
  [CMD.messageIdBeingRespondedTo, 'us'],
  [CMD.priority, 'us'],
  [CMD.dataSetType, 'us'],
  [CMD.status, 'us'],
  [CMD.errorComment, 'text'],
  [CMD.affectedSopInstanceUid, 'uid'],
  [CMD.moveDestination, 'text'],
  [CMD.remaining, 'us'],
  [CMD.completed, 'us'],
  [CMD.failed, 'us'],
  [CMD.warning, 'us'],
  [CMD.moveOriginatorAe, 'text'],
  [CMD.moveOriginatorMessageId, 'us'],
])

/** The largest command set radchain reads: a few short elements (C-STORE-RQ is about 200 bytes). */
export const MAX_COMMAND_BYTES = 64 * 1024

/** A decoded command set: each element's raw value by tag. */
export class Command {
  readonly #els: ReadonlyMap<number, Uint8Array>

  constructor(els: ReadonlyMap<number, Uint8Array>) {
    this.#els = els
  }

  /** Whether the element is present. */
  has(tag: number): boolean {
    return this.#els.has(tag)
  }

  /** A US element's value; throws DIMSE_COMMAND_MALFORMED when absent or not 2 bytes. */
  us(tag: number): number {
    const v = this.#els.get(tag)
    if (v === undefined || v.length !== 2) throw new DimseError('DIMSE_COMMAND_MALFORMED', `command element ${tagText(tag)} missing or not 2 bytes`)
    return (v[0] as number) | ((v[1] as number) << 8)
  }

  /** A text element's value without padding, or undefined when absent. */
  text(tag: number): string | undefined {
    const v = this.#els.get(tag)
    return v === undefined
      ? undefined
      : Buffer.from(v.buffer, v.byteOffset, v.byteLength)
          .toString('latin1')
          .replace(/[\0 ]+$/, '')
          .trimStart()
  }

  /** The Command Field (0000,0100). */
  get field(): number {
    return this.us(CMD.commandField)
  }

  /** Whether a dataset follows (Command Data Set Type other than 0x0101). */
  get hasDataset(): boolean {
    return this.us(CMD.dataSetType) !== NO_DATASET
  }
}

function tagText(tag: number): string {
  return `(${(tag >>> 16).toString(16).padStart(4, '0')},${(tag & 0xffff).toString(16).padStart(4, '0')})`
}

/**
 * Decodes a command set (Implicit VR Little Endian, PS3.5 7.1.3): every
 * element must be of group 0000 and lie within the bytes. Throws
 * DIMSE_COMMAND_MALFORMED.
 */
export function decodeCommand(b: Uint8Array): Command {
  if (b.length > MAX_COMMAND_BYTES) throw new DimseError('DIMSE_COMMAND_MALFORMED', `a command set of ${b.length} bytes`)
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const els = new Map<number, Uint8Array>()
  let off = 0
  while (off < b.length) {
    if (off + 8 > b.length) throw new DimseError('DIMSE_COMMAND_MALFORMED', 'a command element header is cut short')
    const group = v.getUint16(off, true)
    const tag = ((group << 16) | v.getUint16(off + 2, true)) >>> 0
    const len = v.getUint32(off + 4, true)
    if (group !== 0) throw new DimseError('DIMSE_COMMAND_MALFORMED', `element ${tagText(tag)} in a command set (group 0000 only)`)
    if (off + 8 + len > b.length) throw new DimseError('DIMSE_COMMAND_MALFORMED', `command element ${tagText(tag)} runs past the command set`)
    els.set(tag, b.subarray(off + 8, off + 8 + len))
    off += 8 + len
  }
  const cmd = new Command(els)
  cmd.us(CMD.commandField)
  cmd.us(CMD.dataSetType)
  return cmd
}

/** Encodes a command set with its group length (PS3.7 E.1-1), elements in tag order. */
export function encodeCommand(values: ReadonlyMap<number, string | number>): Uint8Array {
  const parts: Buffer[] = []
  for (const tag of [...values.keys()].filter((t) => t !== CMD.groupLength).sort((a, b) => a - b)) {
    const kind = KIND.get(tag)
    if (kind === undefined) throw new RangeError(`no encoding known for command element ${tagText(tag)}`)
    const val = values.get(tag) as string | number
    let value: Buffer
    if (kind === 'us') {
      value = Buffer.alloc(2)
      value.writeUInt16LE(val as number)
    } else if (kind === 'ul') {
      value = Buffer.alloc(4)
      value.writeUInt32LE(val as number)
    } else {
      const s = String(val)
      // UIDs are padded with NUL, other text with a space, to an even length (PS3.5 6.2, 9.1).
      value = Buffer.from(s.length % 2 === 0 ? s : s + (kind === 'uid' ? '\0' : ' '), 'latin1')
    }
    const h = Buffer.alloc(8)
    h.writeUInt16LE(0, 0)
    h.writeUInt16LE(tag & 0xffff, 2)
    h.writeUInt32LE(value.length, 4)
    parts.push(h, value)
  }
  const body = Buffer.concat(parts)
  const gl = Buffer.alloc(12)
  gl.writeUInt32LE(4, 4)
  gl.writeUInt32LE(body.length, 8)
  return Buffer.concat([gl, body])
}
