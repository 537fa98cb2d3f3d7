import { readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createDeflateRaw } from 'node:zlib'
import {
  TAG,
  TRANSFER_SYNTAX,
  cloneInstance,
  firstNumber,
  writeDicom,
  type DicomDataset,
  type DicomElement,
  type DicomInstance,
} from '../../../src/study/index.js'

/** Folder of the sample DICOM files (a pinned copy of the shared samples, see its README). */
export const SAMPLES = fileURLToPath(new URL('../../vectors/dicom/', import.meta.url))

/** Path of one sample file, relative to SAMPLES. */
export function sample(rel: string): string {
  return join(SAMPLES, rel)
}

/** Every sample DICOM file (README excluded), relative to SAMPLES, sorted. */
export function sampleFiles(): string[] {
  const out: string[] = []
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name)
      if (statSync(p).isDirectory()) walk(p)
      else if (name !== 'README.md') out.push(relative(SAMPLES, p))
    }
  }
  walk(SAMPLES)
  return out
}

/** The four CT files of study-77654033. */
export const CT_STUDY = ['17106', '17136', '17166', '17196'].map((f) => sample(`study-77654033/CT2/${f}`))

/** Calls `fn` for every element at any depth, with its tag path depth. */
export function walkElements(ds: DicomDataset, fn: (tag: string, el: DicomElement, depth: number) => void, depth = 0): void {
  for (const [tag, el] of Object.entries(ds)) {
    fn(tag, el, depth)
    if (el.vr === 'SQ') for (const item of el.Value ?? []) walkElements(item as DicomDataset, fn, depth + 1)
  }
}

/** The text values of an element: strings and PN components. */
export function textValues(el: DicomElement): string[] {
  const out: string[] = []
  if (el.vr === 'SQ') return out
  for (const v of el.Value ?? []) {
    if (typeof v === 'string') out.push(v)
    else if (v !== null && typeof v === 'object' && !(v instanceof ArrayBuffer)) {
      for (const c of Object.values(v)) if (typeof c === 'string') out.push(c)
    }
  }
  return out
}

/**
 * `inst` in another native transfer syntax. dcmjs writes OW values as held,
 * so for big endian the 16-bit pixel words are swapped, as a big-endian file
 * holds them: the pixel digest stays the same.
 */
export function reencoded(inst: DicomInstance, ts: string): DicomInstance {
  const out = cloneInstance(inst)
  out.meta[TAG.TransferSyntaxUID] = { vr: 'UI', Value: [ts] }
  const px = inst.dataset[TAG.PixelData]
  if (ts === TRANSFER_SYNTAX.ExplicitVRBigEndian && px?.vr === 'OW' && firstNumber(inst.dataset, TAG.BitsAllocated) === 16) {
    const le = new Uint8Array(px.Value?.[0] as ArrayBuffer)
    const be = new Uint8Array(le.length)
    for (let i = 0; i + 1 < le.length; i += 2) {
      be[i] = le[i + 1] as number
      be[i + 1] = le[i] as number
    }
    out.dataset[TAG.PixelData] = { vr: 'OW', Value: [be.buffer] }
  }
  return out
}

/**
 * The dataset of `inst` alone in Implicit VR Little Endian, without preamble
 * or file meta, as a DIMSE storage SCP writes what it receives.
 */
export function bareDataset(inst: DicomInstance): Uint8Array {
  const part10 = Buffer.from(writeDicom(reencoded(inst, TRANSFER_SYNTAX.ImplicitVRLittleEndian)))
  // Preamble and "DICM" (132 bytes), then (0002,0000) UL (12 bytes) holding the length of the rest of the meta.
  return part10.subarray(132 + 12 + part10.readUInt32LE(132 + 8))
}

/**
 * `inst` as a Deflated Explicit VR Little Endian file (PS3.5 A.5): the file
 * meta of its Explicit VR Little Endian encoding with that Transfer Syntax
 * UID, then the dataset, plus `tail` (e.g. a padding element), deflated.
 */
export async function deflatedFile(inst: DicomInstance, tail: Iterable<Uint8Array> = []): Promise<Uint8Array> {
  const part10 = Buffer.from(writeDicom(reencoded(inst, TRANSFER_SYNTAX.ExplicitVRLittleEndian)))
  const metaEnd = 132 + 12 + part10.readUInt32LE(132 + 8)
  const elements: Buffer[] = []
  for (let off = 144; off < metaEnd;) {
    const elem = part10.readUInt16LE(off + 2)
    const vr = part10.toString('latin1', off + 4, off + 6)
    const long = ['OB', 'OW', 'UN', 'SQ', 'UT', 'UC', 'UR'].includes(vr)
    const hdr = long ? 12 : 8
    const len = long ? part10.readUInt32LE(off + 8) : part10.readUInt16LE(off + 6)
    if (elem === 0x0010) {
      const uid = Buffer.from(`${TRANSFER_SYNTAX.DeflatedExplicitVRLittleEndian}`, 'latin1') // 22 characters: even, no padding
      const e = Buffer.alloc(8 + uid.length)
      e.writeUInt16LE(0x0002, 0)
      e.writeUInt16LE(0x0010, 2)
      e.write('UI', 4, 'latin1')
      e.writeUInt16LE(uid.length, 6)
      uid.copy(e, 8)
      elements.push(e)
    } else elements.push(part10.subarray(off, off + hdr + len))
    off += hdr + len
  }
  const meta = Buffer.concat(elements)
  const head = Buffer.from(part10.subarray(0, 144))
  head.writeUInt32LE(meta.length, 140)
  const deflate = createDeflateRaw()
  const out: Buffer[] = []
  deflate.on('data', (b: Buffer) => out.push(b))
  const done = new Promise<void>((resolve, reject) => deflate.on('end', resolve).on('error', reject))
  const write = (b: Uint8Array): Promise<void> => new Promise((resolve) => (deflate.write(b) ? resolve() : deflate.once('drain', resolve)))
  await write(part10.subarray(metaEnd))
  for (const b of tail) await write(b)
  deflate.end()
  await done
  return Buffer.concat([head, meta, ...out])
}

/**
 * A Data Set Trailing Padding element (FFFC,FFFC) OB of `bytes` zeros in
 * Explicit VR Little Endian, yielded in pieces of 1 MiB.
 */
export function* trailingPadding(bytes: number): Generator<Uint8Array> {
  const hdr = Buffer.alloc(12)
  hdr.writeUInt16LE(0xfffc, 0)
  hdr.writeUInt16LE(0xfffc, 2)
  hdr.write('OB', 4, 'latin1')
  hdr.writeUInt32LE(bytes, 8)
  yield hdr
  const zeros = new Uint8Array(1024 * 1024)
  for (let left = bytes; left > 0; left -= zeros.length) yield left >= zeros.length ? zeros : zeros.subarray(0, left)
}
