import { randomInt } from 'node:crypto'
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { RadError, type ErrorCodes } from '../util/index.js'
import { TAG, type DicomDataset, type DicomElement } from './dataset.js'
import { TRANSFER_SYNTAX } from './dicom.js'
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, writeDicom } from './dicom-write.js'
import { randomUid } from './uid.js'

/**
 * Why the synthetic study generator refused its options.
 * - SYNTHETIC_BAD_OPTIONS: slices, rows, columns, seed or pixel representation out of range.
 * - SYNTHETIC_OUT_NOT_EMPTY: the output folder exists and holds something, or is not a folder.
 */
export type SyntheticErrorCode = ErrorCodes<'SYNTHETIC_BAD_OPTIONS' | 'SYNTHETIC_OUT_NOT_EMPTY'>

/** CT Image Storage SOP Class UID (PS3.4 B.5, Table B.5-1). */
export const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2'
/** Largest number of slices {@link generateCtStudy} writes. */
export const MAX_SYNTHETIC_SLICES = 100_000
/** Largest Rows or Columns {@link generateCtStudy} accepts. */
export const MAX_SYNTHETIC_DIM = 4096
/** Private creator of the generator's private block (PS3.5 7.8.1), group 0009. */
export const SYNTHETIC_PRIVATE_CREATOR = 'RADCHAIN SYNTHETIC 1'

/** Options of {@link generateCtStudy}. */
export interface SyntheticCtOptions {
  /** Number of slices (one file each), 1..MAX_SYNTHETIC_SLICES. */
  slices: number
  /** Rows per slice, 1..4096; 512 when absent. */
  rows?: number
  /** Columns per slice, 1..4096; 512 when absent. */
  cols?: number
  /** Output folder: created when absent, refused when it holds anything. */
  out: string
  /** Seed of the pixel pattern (u32); the same seed and size give the same pixels. Random when absent. */
  seed?: number
  /**
   * Pixel Representation (0028,0103): 0 stores unsigned values with Rescale
   * Intercept -1024, 1 stores two's complement values with intercept 0. 0 when absent.
   */
  pixelRepresentation?: 0 | 1
  /** Called after each file is written. */
  onProgress?: (p: { written: number; total: number; bytes: number }) => void
  /** Stops between two files (rejects with the signal's reason); the files written so far stay. */
  signal?: AbortSignal
}

/** The made-up identifying values written into every file; de-identification must remove them. */
export interface SyntheticDemographics {
  /** Patient's Name (0010,0010), `Synthetic^Patient` and 6 random digits. */
  patientName: string
  /** Patient ID (0010,0020). */
  patientId: string
  /** Patient's Birth Date (0010,0030), YYYYMMDD. */
  patientBirthDate: string
  /** Patient's Sex (0010,0040). */
  patientSex: 'F' | 'M' | 'O'
  /** Accession Number (0008,0050). */
  accessionNumber: string
  /** Institution Name (0008,0080). */
  institutionName: string
  /** Referring Physician's Name (0008,0090). */
  referringPhysicianName: string
  /** Study Date (0008,0020), YYYYMMDD. */
  studyDate: string
  /** Study Time (0008,0030), HHMMSS. */
  studyTime: string
  /** Study ID (0020,0010). */
  studyId: string
  /** Private value (0009,1010), under SYNTHETIC_PRIVATE_CREATOR. */
  privateValue: string
}

/** What {@link generateCtStudy} wrote. */
export interface SyntheticCtStudy {
  /** The output folder, absolute. */
  out: string
  /** Paths of the files in slice order, `CT000001.dcm`, ... */
  files: string[]
  /** Total bytes written. */
  bytes: number
  /** Seed of the pixel pattern. */
  seed: number
  studyInstanceUid: string
  seriesInstanceUid: string
  frameOfReferenceUid: string
  /** SOP Instance UID of each file, in slice order. */
  sopInstanceUids: string[]
  demographics: SyntheticDemographics
}

function bad(message: string): RadError<SyntheticErrorCode> {
  return new RadError<SyntheticErrorCode>('SYNTHETIC_BAD_OPTIONS', message)
}

function checkInt(v: unknown, what: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(`${what} must be an integer between ${min} and ${max}`)
  return v
}

async function prepareOut(out: string): Promise<void> {
  let st
  try {
    st = await stat(out)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    await mkdir(out, { recursive: true })
    return
  }
  if (!st.isDirectory()) throw new RadError<SyntheticErrorCode>('SYNTHETIC_OUT_NOT_EMPTY', `${out} exists and is not a folder`)
  if ((await readdir(out)).length > 0) throw new RadError<SyntheticErrorCode>('SYNTHETIC_OUT_NOT_EMPTY', `${out} is not empty; give a new or empty folder`)
}

const digits = (n: number): string => Array.from({ length: n }, () => String(randomInt(10))).join('')
const pad = (n: number, w: number): string => String(n).padStart(w, '0')

function makeDemographics(now: Date): SyntheticDemographics {
  const year = 1940 + randomInt(65)
  const birth = `${year}${pad(1 + randomInt(12), 2)}${pad(1 + randomInt(28), 2)}`
  const sexes = ['F', 'M', 'O'] as const
  return {
    patientName: `Synthetic^Patient${digits(6)}`,
    patientId: `SYN${digits(9)}`,
    patientBirthDate: birth,
    patientSex: sexes[randomInt(sexes.length)] as 'F' | 'M' | 'O',
    accessionNumber: `SACC${digits(10)}`,
    institutionName: `Synthetic Hospital ${digits(5)}`,
    referringPhysicianName: `Synthetic^Referrer${digits(6)}`,
    studyDate: `${now.getUTCFullYear()}${pad(now.getUTCMonth() + 1, 2)}${pad(now.getUTCDate(), 2)}`,
    studyTime: `${pad(now.getUTCHours(), 2)}${pad(now.getUTCMinutes(), 2)}${pad(now.getUTCSeconds(), 2)}`,
    studyId: `SST${digits(8)}`,
    privateValue: `SYNPRIV${digits(10)}`,
  }
}

const el = (vr: string, ...values: (string | number)[]): DicomElement => ({ vr, Value: values })
const pn = (name: string): DicomElement => ({ vr: 'PN', Value: [{ Alphabetic: name }] })
/** A DS value with at most 6 decimals and no float noise, within 16 characters (PS3.5 6.2). */
const ds = (x: number): string => String(Number(x.toFixed(6)))

/** One disc or ellipse of the phantom, in HU, in fractions of the field of view; `z` limits it to a slab. */
interface Shape {
  cx: number
  cy: number
  rx: number
  ry: number
  hu: number
  /** Centre and half-height of a spherical shape along the slices (fractions 0..1), or none: a cylinder. */
  sphere?: { z: number; r: number }
}

// A body with lungs, a spine, a contrast-filled vessel, a fat pad and two
// spherical lesions: regions of distinct HU that change along the series.
const PHANTOM: readonly Shape[] = [
  { cx: 0.5, cy: 0.5, rx: 0.42, ry: 0.32, hu: 40 },
  { cx: 0.33, cy: 0.47, rx: 0.12, ry: 0.2, hu: -850, sphere: { z: 0.5, r: 0.45 } },
  { cx: 0.67, cy: 0.47, rx: 0.12, ry: 0.2, hu: -850, sphere: { z: 0.5, r: 0.45 } },
  { cx: 0.5, cy: 0.74, rx: 0.05, ry: 0.05, hu: 700 },
  { cx: 0.5, cy: 0.42, rx: 0.035, ry: 0.035, hu: 250 },
  { cx: 0.5, cy: 0.25, rx: 0.08, ry: 0.03, hu: -100 },
  { cx: 0.31, cy: 0.42, rx: 0.04, ry: 0.04, hu: 60, sphere: { z: 0.35, r: 0.12 } },
  { cx: 0.7, cy: 0.55, rx: 0.03, ry: 0.03, hu: 1200, sphere: { z: 0.7, r: 0.08 } },
]
const AIR_HU = -1000
const NOISE_HU = 12

/** A 32-bit mix of the seed and the slice number (splitmix-like), so each slice has its own noise. */
function sliceSeed(seed: number, slice: number): number {
  let h = (seed ^ Math.imul(slice + 1, 0x9e3779b9)) >>> 0
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0
  return (h ^ (h >>> 16)) >>> 0 || 1
}

/**
 * Fills `hu` (rows x cols, row-major) with slice `slice` of `slices` of the
 * phantom, then adds noise from a xorshift32 generator seeded by (seed, slice).
 */
function renderSlice(hu: Int16Array, rows: number, cols: number, slice: number, slices: number, seed: number): void {
  hu.fill(AIR_HU)
  const z = slices === 1 ? 0.5 : slice / (slices - 1)
  for (const s of PHANTOM) {
    let scale = 1
    if (s.sphere !== undefined) {
      const d = (z - s.sphere.z) / s.sphere.r
      if (Math.abs(d) >= 1) continue
      scale = Math.sqrt(1 - d * d)
    }
    const cx = s.cx * cols
    const cy = s.cy * rows
    const rx = s.rx * cols * scale
    const ry = s.ry * rows * scale
    if (rx < 0.5 || ry < 0.5) continue
    const y0 = Math.max(0, Math.ceil(cy - ry))
    const y1 = Math.min(rows - 1, Math.floor(cy + ry))
    for (let y = y0; y <= y1; y++) {
      const dy = (y + 0.5 - cy) / ry
      if (dy * dy >= 1) continue
      const w = rx * Math.sqrt(1 - dy * dy)
      const x0 = Math.max(0, Math.ceil(cx - w - 0.5))
      const x1 = Math.min(cols, Math.floor(cx + w + 0.5))
      if (x1 > x0) hu.fill(s.hu, y * cols + x0, y * cols + x1)
    }
  }
  // Noise: sum of four uniforms (Irwin-Hall, close to normal), standard deviation NOISE_HU.
  let x = sliceSeed(seed, slice)
  const k = NOISE_HU / (0.5773502691896258 * 0x10000)
  for (let i = 0; i < hu.length; i++) {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    const u = (x & 0xffff) + (x >>> 16)
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    const v = (x & 0xffff) + (x >>> 16)
    hu[i] = (hu[i] as number) + Math.round((u + v - 0x20000) * k)
  }
}

/**
 * Writes a synthetic CT series as DICOM Part 10 files (PS3.10 7), Explicit VR
 * Little Endian, CT Image Storage (PS3.3 A.3: Patient, General Study, General
 * Series, Frame of Reference, General Equipment, General Image, Image Plane,
 * Image Pixel, CT Image, VOI LUT and SOP Common modules): one study, one
 * series, fresh UUID-derived UIDs (PS3.5 B.2), 16 bits allocated and 12
 * stored. The pixels are a phantom of regions with distinct HU and seeded
 * noise, different in every slice. The files carry made-up identifying
 * attributes and a private block (group 0009) that de-identification must
 * remove; they are returned. One slice is in memory at a time, so any number
 * of slices needs the memory of one. Files are `CT000001.dcm`, ... in `out`.
 * Throws RadError SYNTHETIC_BAD_OPTIONS or SYNTHETIC_OUT_NOT_EMPTY before
 * writing anything.
 */
export async function generateCtStudy(opts: SyntheticCtOptions): Promise<SyntheticCtStudy> {
  const slices = checkInt(opts.slices, 'slices', 1, MAX_SYNTHETIC_SLICES)
  const rows = checkInt(opts.rows ?? 512, 'rows', 1, MAX_SYNTHETIC_DIM)
  const cols = checkInt(opts.cols ?? 512, 'cols', 1, MAX_SYNTHETIC_DIM)
  const seed = checkInt(opts.seed ?? randomInt(0x1_0000_0000 - 1), 'seed', 0, 0xffffffff)
  const pixelRepresentation = opts.pixelRepresentation ?? 0
  if (pixelRepresentation !== 0 && pixelRepresentation !== 1) throw bad('pixelRepresentation must be 0 or 1')
  if (typeof opts.out !== 'string' || opts.out === '') throw bad('out must be a folder path')
  const out = resolve(opts.out)
  opts.signal?.throwIfAborted()
  await prepareOut(out)

  const now = new Date()
  const demo = makeDemographics(now)
  const studyInstanceUid = randomUid()
  const seriesInstanceUid = randomUid()
  const frameOfReferenceUid = randomUid()
  const spacing = 350 / Math.max(rows, cols)
  const thickness = 1.25
  const intercept = pixelRepresentation === 0 ? -1024 : 0
  const [minStored, maxStored] = pixelRepresentation === 0 ? [0, 4095] : [-2048, 2047]

  const base: DicomDataset = {
    '00080005': el('CS', 'ISO_IR 100'),
    '00080008': el('CS', 'ORIGINAL', 'PRIMARY', 'AXIAL'),
    '00080012': el('DA', demo.studyDate),
    '00080013': el('TM', demo.studyTime),
    [TAG.SOPClassUID]: el('UI', CT_IMAGE_STORAGE),
    '00080020': el('DA', demo.studyDate),
    '00080021': el('DA', demo.studyDate),
    '00080023': el('DA', demo.studyDate),
    '00080030': el('TM', demo.studyTime),
    '00080031': el('TM', demo.studyTime),
    '00080033': el('TM', demo.studyTime),
    '00080050': el('SH', demo.accessionNumber),
    '00080060': el('CS', 'CT'),
    '00080070': el('LO', 'radchain'),
    '00080080': el('LO', demo.institutionName),
    '00080090': pn(demo.referringPhysicianName),
    '00081030': el('LO', 'SYNTHETIC CT PHANTOM'),
    '0008103E': el('LO', 'SYNTHETIC AXIAL'),
    '00081090': el('LO', 'SYNTHETIC PHANTOM GENERATOR'),
    '00090010': el('LO', SYNTHETIC_PRIVATE_CREATOR),
    '00091010': el('LO', demo.privateValue),
    '00091011': el('LO', demo.patientId),
    [TAG.PatientName]: pn(demo.patientName),
    [TAG.PatientID]: el('LO', demo.patientId),
    '00100030': el('DA', demo.patientBirthDate),
    '00100040': el('CS', demo.patientSex),
    '00180015': el('CS', 'CHEST'),
    '00180050': el('DS', ds(thickness)),
    '00180060': el('DS', '120'),
    '00185100': el('CS', 'HFS'),
    [TAG.StudyInstanceUID]: el('UI', studyInstanceUid),
    [TAG.SeriesInstanceUID]: el('UI', seriesInstanceUid),
    '00200010': el('SH', demo.studyId),
    '00200011': el('IS', 1),
    '00200012': el('IS', 1),
    '00200037': el('DS', '1', '0', '0', '0', '1', '0'),
    [TAG.FrameOfReferenceUID]: el('UI', frameOfReferenceUid),
    '00201040': { vr: 'LO', Value: [] },
    [TAG.SamplesPerPixel]: el('US', 1),
    '00280004': el('CS', 'MONOCHROME2'),
    [TAG.Rows]: el('US', rows),
    [TAG.Columns]: el('US', cols),
    '00280030': el('DS', ds(spacing), ds(spacing)),
    [TAG.BitsAllocated]: el('US', 16),
    '00280101': el('US', 12),
    '00280102': el('US', 11),
    '00280103': el('US', pixelRepresentation),
    '00281050': el('DS', '40'),
    '00281051': el('DS', '400'),
    '00281052': el('DS', ds(intercept)),
    '00281053': el('DS', '1'),
    '00281054': el('LO', 'HU'),
  }
  const meta: DicomDataset = {
    [TAG.TransferSyntaxUID]: el('UI', TRANSFER_SYNTAX.ExplicitVRLittleEndian),
    [TAG.ImplementationClassUID]: el('UI', IMPLEMENTATION_CLASS_UID),
    [TAG.ImplementationVersionName]: el('SH', IMPLEMENTATION_VERSION_NAME),
  }

  // One slice's buffers, reused: writeDicom copies the pixels into the file bytes.
  const hu = new Int16Array(rows * cols)
  const pixels = new ArrayBuffer(rows * cols * 2)
  const view = new DataView(pixels)
  const files: string[] = []
  const sopInstanceUids: string[] = []
  let bytes = 0
  const z0 = -((slices - 1) * thickness) / 2
  for (let i = 0; i < slices; i++) {
    opts.signal?.throwIfAborted()
    renderSlice(hu, rows, cols, i, slices, seed)
    for (let p = 0; p < hu.length; p++) {
      const v = Math.min(maxStored, Math.max(minStored, (hu[p] as number) - intercept))
      view.setUint16(p * 2, v & 0xffff, true)
    }
    const sop = randomUid()
    const z = z0 + i * thickness
    const dataset: DicomDataset = {
      ...base,
      [TAG.SOPInstanceUID]: el('UI', sop),
      '00200013': el('IS', i + 1),
      '00200032': el('DS', ds((-spacing * cols) / 2), ds((-spacing * rows) / 2), ds(z)),
      '00201041': el('DS', ds(z)),
      [TAG.PixelData]: { vr: 'OW', Value: [pixels] },
    }
    const file = join(out, `CT${String(i + 1).padStart(6, '0')}.dcm`)
    const data = writeDicom({ meta, dataset })
    await writeFile(file, data, { flag: 'wx' })
    files.push(file)
    sopInstanceUids.push(sop)
    bytes += data.length
    opts.onProgress?.({ written: i + 1, total: slices, bytes })
  }
  return { out, files, bytes, seed, studyInstanceUid, seriesInstanceUid, frameOfReferenceUid, sopInstanceUids, demographics: demo }
}
