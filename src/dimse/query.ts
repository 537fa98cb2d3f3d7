import type { DicomDataset, DicomElement } from '../study/index.js'
import { identifierText } from './identifier.js'

/** Query/Retrieve SOP classes (PS3.4 C.6.1, C.6.2): Patient Root and Study Root, FIND, MOVE and GET. */
export const QR_SOP_CLASS = {
  patientRootFind: '1.2.840.10008.5.1.4.1.2.1.1',
  patientRootMove: '1.2.840.10008.5.1.4.1.2.1.2',
  patientRootGet: '1.2.840.10008.5.1.4.1.2.1.3',
  studyRootFind: '1.2.840.10008.5.1.4.1.2.2.1',
  studyRootMove: '1.2.840.10008.5.1.4.1.2.2.2',
  studyRootGet: '1.2.840.10008.5.1.4.1.2.2.3',
} as const

/** The Q/R abstract syntaxes the SCP accepts, by the operation they carry. */
export const QR_FIND: ReadonlySet<string> = new Set([QR_SOP_CLASS.studyRootFind, QR_SOP_CLASS.patientRootFind])
export const QR_MOVE: ReadonlySet<string> = new Set([QR_SOP_CLASS.studyRootMove, QR_SOP_CLASS.patientRootMove])
export const QR_GET: ReadonlySet<string> = new Set([QR_SOP_CLASS.studyRootGet, QR_SOP_CLASS.patientRootGet])

/** A query level below the patient (PS3.4 C.6.2.1): the index has no patient level of its own. */
export type DimseLevel = 'study' | 'series' | 'instance'

/** One key of an identifier: its tag, the VR it came with, and its value as text (`\`-joined, '' for a return key). */
export interface DimseMatchKey {
  readonly tag: string
  readonly vr: string
  readonly value: string
}

/** A C-FIND, C-MOVE or C-GET identifier as the backend matches it. */
export interface DimseQuery {
  readonly level: DimseLevel
  /** Every key of the identifier but Query/Retrieve Level, Specific Character Set and sequences. */
  readonly keys: readonly DimseMatchKey[]
}

const QUERY_LEVEL_TAG = '00080052'
const CHARSET_TAG = '00080005'
const RETRIEVE_AE_TAG = '00080054'
/** Unique keys (PS3.4 C.6.2.1.1) of each level and those above it. */
export const UNIQUE_KEYS: Readonly<Record<DimseLevel, readonly string[]>> = {
  study: ['0020000D'],
  series: ['0020000D', '0020000E'],
  instance: ['0020000D', '0020000E', '00080018'],
}
const LEVELS: Readonly<Record<string, DimseLevel>> = { STUDY: 'study', SERIES: 'series', IMAGE: 'instance' }

/**
 * The query an identifier asks (PS3.4 C.4.1.2.1, C.6.2): its Query/Retrieve
 * Level (STUDY, SERIES or IMAGE; PATIENT is not served) and its keys. A
 * refusal carries the status to answer with: 0xA900 (Identifier does not
 * match SOP Class) for a missing or unknown level.
 */
export function parseQuery(identifier: DicomDataset): DimseQuery | { readonly status: number; readonly comment: string } {
  const levelText = identifierText(identifier[QUERY_LEVEL_TAG]).trim().toUpperCase()
  const level = LEVELS[levelText]
  if (level === undefined)
    return { status: 0xa900, comment: levelText === '' ? 'no QueryRetrieveLevel (0008,0052)' : `QueryRetrieveLevel ${levelText.slice(0, 16)} not supported` }
  const keys: DimseMatchKey[] = []
  for (const [tag, el] of Object.entries(identifier)) {
    if (tag === QUERY_LEVEL_TAG || tag === CHARSET_TAG || tag === RETRIEVE_AE_TAG || el.vr === 'SQ' || tag.startsWith('0002') || tag.endsWith('0000')) continue
    keys.push({ tag, vr: el.vr, value: identifierText(el) })
  }
  return { level, keys }
}

/**
 * One C-FIND response identifier (PS3.4 C.4.1.1.3.2): the Query/Retrieve
 * Level, every key the request's identifier had (with the match's value, or
 * empty when it has none), the unique keys of the level and above, Retrieve
 * AE Title when asked for (this node), and the match's Specific Character
 * Set when it has one.
 */
export function findResponse(identifier: DicomDataset, level: DimseLevel, match: DicomDataset, aeTitle: string): DicomDataset {
  const out: DicomDataset = {}
  const levelText = level === 'instance' ? 'IMAGE' : level.toUpperCase()
  out[QUERY_LEVEL_TAG] = { vr: 'CS', Value: [levelText] }
  const charset = match[CHARSET_TAG]
  if (charset?.Value !== undefined && charset.Value.length > 0) out[CHARSET_TAG] = charset
  const copy = (tag: string, vr: string): void => {
    const el: DicomElement | undefined = match[tag]
    out[tag] = el?.Value !== undefined && el.Value.length > 0 ? { vr: el.vr, Value: el.Value } : { vr }
  }
  for (const [tag, el] of Object.entries(identifier)) {
    if (tag === QUERY_LEVEL_TAG || tag === CHARSET_TAG || el.vr === 'SQ') continue
    if (tag === RETRIEVE_AE_TAG) out[tag] = { vr: 'AE', Value: [aeTitle] }
    else copy(tag, el.vr === 'UN' ? (match[tag]?.vr ?? 'UN') : el.vr)
  }
  for (const tag of UNIQUE_KEYS[level]) if (out[tag] === undefined) copy(tag, 'UI')
  return out
}
