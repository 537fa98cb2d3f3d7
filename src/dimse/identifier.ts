import { data } from 'dcmjs'
import { encodeDataset, type DicomDataset, type DicomElement } from '../study/index.js'
import { DimseError } from './errors.js'

// The Identifier of a C-FIND, C-MOVE or C-GET request (PS3.4 C.4.1.1.3,
// PS3.7 9.1.2.1.5): a small dataset in the presentation context's transfer
// syntax (Implicit or Explicit VR Little Endian here). Read by hand rather
// than with dcmjs: a return key is an element of zero length, and dcmjs
// reads an empty US as the value 0, which would become a matching key.

/** Implicit VR Little Endian (PS3.5 A.1). */
export const IMPLICIT_LE = '1.2.840.10008.1.2'
/** Explicit VR Little Endian (PS3.5 A.2). */
export const EXPLICIT_LE = '1.2.840.10008.1.2.1'

/** The largest identifier read (a query is a few hundred bytes; a long UID list a few tens of KiB). */
export const MAX_IDENTIFIER_BYTES = 1024 * 1024

/** Explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2). */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV'])
const NUMBERS: Readonly<Record<string, { bytes: number; read: (v: DataView, off: number) => number }>> = {
  US: { bytes: 2, read: (v, o) => v.getUint16(o, true) },
  SS: { bytes: 2, read: (v, o) => v.getInt16(o, true) },
  UL: { bytes: 4, read: (v, o) => v.getUint32(o, true) },
  SL: { bytes: 4, read: (v, o) => v.getInt32(o, true) },
  FL: { bytes: 4, read: (v, o) => v.getFloat32(o, true) },
  FD: { bytes: 8, read: (v, o) => v.getFloat64(o, true) },
}
const UNDEFINED_LENGTH = 0xffffffff

/** The VR PS3.6 gives a tag (`GGGGEEEE`), for Implicit VR; UN when the dictionary lacks it. */
function dictionaryVr(tag: string): string {
  const e = data.DicomMetaDictionary.dictionary[`(${tag.slice(0, 4)},${tag.slice(4)})`]
  const vr = e?.vr ?? 'UN'
  // Several VRs (US or SS, OB or OW): the first is taken; such attributes are not query keys.
  return vr.length === 2 ? vr : vr.slice(0, 2)
}

function bad(what: string): DimseError {
  return new DimseError('DIMSE_IDENTIFIER_MALFORMED', `identifier: ${what}`)
}

/**
 * Decodes an Identifier in Implicit or Explicit VR Little Endian (PS3.5
 * 7.1): every top-level element, text values as strings split at `\` (UI
 * and text padding removed), binary numbers as numbers; an element of zero
 * length has no values (a return key, or universal matching). Sequences are
 * skipped over (no sequence matching) and kept as empty SQ elements (return
 * keys). Text is read as ISO-IR 100, or UTF-8 when the Specific Character
 * Set says ISO_IR 192. Throws DIMSE_IDENTIFIER_MALFORMED.
 */
export function decodeIdentifier(b: Uint8Array, ts: string): DicomDataset {
  if (ts !== IMPLICIT_LE && ts !== EXPLICIT_LE) throw bad(`transfer syntax ${ts} not supported for an identifier`)
  if (b.length > MAX_IDENTIFIER_BYTES) throw bad(`${b.length} bytes, above ${MAX_IDENTIFIER_BYTES}`)
  const explicit = ts === EXPLICIT_LE
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const raw: { tag: string; vr: string; value: Uint8Array | undefined }[] = []
  let off = 0
  const header = (at: number, inExplicit: boolean): { tag: string; vr: string; len: number; next: number } => {
    if (at + 8 > b.length) throw bad('an element header is cut short')
    const group = v.getUint16(at, true)
    const elem = v.getUint16(at + 2, true)
    const tag = (group.toString(16).padStart(4, '0') + elem.toString(16).padStart(4, '0')).toUpperCase()
    // Item and delimitation tags (FFFE,xxxx) are always implicit: tag and 4-byte length (PS3.5 7.5).
    if (group === 0xfffe || !inExplicit) return { tag, vr: group === 0xfffe ? '' : dictionaryVr(tag), len: v.getUint32(at + 4, true), next: at + 8 }
    const vr = String.fromCharCode(b[at + 4] as number, b[at + 5] as number)
    if (!/^[A-Z]{2}$/.test(vr)) throw bad(`element (${tag.slice(0, 4)},${tag.slice(4)}) has no valid VR`)
    if (LONG_VRS.has(vr)) {
      if (at + 12 > b.length) throw bad('an element header is cut short')
      return { tag, vr, len: v.getUint32(at + 8, true), next: at + 12 }
    }
    return { tag, vr, len: v.getUint16(at + 6, true), next: at + 8 }
  }
  // Skips a value of undefined length (a sequence's items, or an item's elements) up to its delimiter; returns the offset after it.
  const skipUndefined = (at: number, depth: number): number => {
    if (depth > 16) throw bad('sequences nested too deep')
    let p = at
    for (;;) {
      const h = header(p, explicit)
      if (h.tag === 'FFFEE0DD' || h.tag === 'FFFEE00D') return h.next
      if (h.len === UNDEFINED_LENGTH) p = skipUndefined(h.next, depth + 1)
      else {
        if (h.next + h.len > b.length) throw bad(`element (${h.tag.slice(0, 4)},${h.tag.slice(4)}) runs past the identifier`)
        p = h.next + h.len
      }
    }
  }
  while (off < b.length) {
    const h = header(off, explicit)
    if (h.tag.startsWith('FFFE')) throw bad('an item or delimiter at the top level')
    if (h.len === UNDEFINED_LENGTH) {
      if (h.vr !== 'SQ' && h.vr !== 'UN') throw bad(`element (${h.tag.slice(0, 4)},${h.tag.slice(4)}) of undefined length`)
      off = skipUndefined(h.next, 0)
      raw.push({ tag: h.tag, vr: 'SQ', value: undefined })
      continue
    }
    if (h.next + h.len > b.length) throw bad(`element (${h.tag.slice(0, 4)},${h.tag.slice(4)}) runs past the identifier`)
    raw.push({ tag: h.tag, vr: h.vr, value: h.vr === 'SQ' ? undefined : b.subarray(h.next, h.next + h.len) })
    off = h.next + h.len
  }
  const charset = raw.find((r) => r.tag === '00080005')
  const utf8 = charset?.value !== undefined && Buffer.from(charset.value).toString('latin1').includes('ISO_IR 192')
  const ds: DicomDataset = {}
  for (const r of raw) {
    const el: DicomElement = { vr: r.vr }
    if (r.value !== undefined && r.value.length > 0) {
      const num = NUMBERS[r.vr]
      if (num !== undefined) {
        const dv = new DataView(r.value.buffer, r.value.byteOffset, r.value.byteLength)
        const vals: number[] = []
        for (let p = 0; p + num.bytes <= r.value.length; p += num.bytes) vals.push(num.read(dv, p))
        el.Value = vals
      } else if (!LONG_VRS.has(r.vr) || r.vr === 'UC' || r.vr === 'UR' || r.vr === 'UT') {
        const text = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength).toString(utf8 ? 'utf8' : 'latin1')
        const values = (r.vr === 'LT' || r.vr === 'ST' || r.vr === 'UT' || r.vr === 'UR' ? [text] : text.split('\\')).map((s) =>
          s.replace(/[\0 ]+$/, '').replace(/^ +/, ''),
        )
        if (values.some((s) => s !== '')) el.Value = values
      }
    }
    ds[r.tag] = el
  }
  return ds
}

/** The text of an identifier element's values as a matching key (`\`-joined), '' for none. */
export function identifierText(el: DicomElement | undefined): string {
  return (el?.Value ?? []).map((x) => (typeof x === 'number' ? String(x) : typeof x === 'string' ? x : '')).join('\\')
}

/** Encodes an Identifier (a C-FIND response's, a final C-MOVE response's) in the context's transfer syntax. */
export function encodeIdentifier(ds: DicomDataset, ts: string): Uint8Array {
  return encodeDataset(ds, ts)
}
