import { readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
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
