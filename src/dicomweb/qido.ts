// QIDO-RS, the Search transaction of PS3.18 10.6, as pure functions: the query
// parameters parsed and checked, the C-FIND matching rules of PS3.4 C.2.2.2
// applied to the index the caller keeps, and the answer in the DICOM JSON
// model (PS3.18 F.2). No HTTP, no storage: the listener and the index call in.
import { firstNumber, firstString, type DicomDataset, type DicomElement, type DicomValue, type PersonName } from '../study/index.js'
import { attributeByKeyword, attributeByTag, attributeLevel, type QidoLevel } from './attributes.js'
import { DicomwebError } from './errors.js'

/**
 * One instance the node may show, as the index keeps it: its attributes split
 * by query level (see {@link splitLevels}). Every instance of a study carries
 * the same study attributes, every instance of a series the same series ones.
 */
export interface IndexedInstance {
  study: DicomDataset
  series: DicomDataset
  instance: DicomDataset
}

/** One matching key of a query: an attribute and the value it must match. */
export interface QidoMatchKey {
  /** `GGGGEEEE`. */
  tag: string
  /** VR from the dictionary; undefined for a tag it lacks (matched by the VR the data has). */
  vr?: string
  /** The value as given, '' for universal matching; the values of a repeated UID key joined by `\`. */
  value: string
  /** The query parameter's name as given, for messages. */
  param: string
}

/** A parsed QIDO-RS query (plain data: {@link runQido} compiles the matching). */
export interface QidoQuery {
  level: QidoLevel
  /** The resource's path: `/studies/{study}/series`, `/studies/{study}/instances`, `/studies/{study}/series/{series}/instances`. */
  scope: { study?: string; series?: string }
  keys: QidoMatchKey[]
  /** Tags asked for by `includefield`. */
  includeFields: string[]
  /** `includefield=all`. */
  includeAll: boolean
  /** `fuzzymatching=true`. */
  fuzzy: boolean
  limit: number
  offset: number
  /** Warnings for the answer's `Warning: 299` header (a parameter accepted but not acted on). */
  warnings: string[]
}

/** The largest `limit` a query may ask for unless `maxLimit` says otherwise; also the limit of a query that gives none. */
export const QIDO_MAX_LIMIT = 1000

/**
 * Attributes every result of a level carries (the Study / Series / Instance
 * Resource tables of PS3.18 10.6.3.3, with what Orthanc and dcm4chee add):
 * present with an empty value when the data lacks them.
 */
export const QIDO_DEFAULTS: Readonly<Record<QidoLevel, readonly string[]>> = {
  study:
    '00080005 00080020 00080030 00080050 00080056 00080061 00080090 00081030 00081190 00100010 00100020 00100030 00100040 0020000D 00200010 00201206 00201208'.split(
      ' ',
    ),
  series: '00080005 00080021 00080031 00080060 0008103E 00081190 0020000D 0020000E 00200011 00201209'.split(' '),
  instance: '00080016 00080018 00080056 00081190 0020000D 0020000E 00200013 00280008 00280010 00280011 00280100'.split(' '),
}

const RANK: Record<QidoLevel, number> = { study: 0, series: 1, instance: 2 }
const LEVELS: QidoLevel[] = ['study', 'series', 'instance']
const BINARY_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN'])
const NUMERIC_VRS = new Set(['IS', 'DS', 'US', 'SS', 'UL', 'SL', 'FL', 'FD', 'SV', 'UV'])
/** Text VRs whose value may hold a backslash: never split into a value list. */
const TEXT_VRS = new Set(['LT', 'ST', 'UT', 'UR'])
const UID_RE = /^[0-9]+(\.[0-9]+)*$/
const NUMBER_RE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/
const STUDY_UID = '0020000D'
const SERIES_UID = '0020000E'
const SOP_UID = '00080018'
const FUZZY_WORDS = /[\^\s,]+/

function bad(param: string, why: string): never {
  throw new DicomwebError('DICOMWEB_BAD_QUERY', `query parameter ${param}: ${why}`)
}

function isUid(s: string): boolean {
  return s.length <= 64 && UID_RE.test(s)
}

/**
 * The tag a query names: a keyword of the dictionary (any letter case) or
 * `GGGGEEEE` (either case). Paths into sequences (`A.B`), malformed tags,
 * unknown keywords, group lengths and command / file meta groups are refused
 * (DICOMWEB_BAD_QUERY naming `param`).
 */
function resolveTag(param: string, text: string): string {
  if (text.includes('.')) bad(param, 'sequence matching is not supported (no attribute paths)')
  if (/^[0-9A-Fa-f]{8}$/.test(text)) {
    const tag = text.toUpperCase()
    if (tag.endsWith('0000') || /^(0000|0002|0004|0006|FFFE)/.test(tag)) bad(param, `(${tag.slice(0, 4)},${tag.slice(4)}) is not a queryable attribute`)
    return tag
  }
  const info = attributeByKeyword(text)
  if (info !== undefined) return info.tag
  if (/^[0-9A-Fa-f(),x ]+$/.test(text) && /\d/.test(text)) bad(param, `"${text}" is a malformed tag: 8 hex digits GGGGEEEE expected`)
  return bad(param, `"${text}" is not a known attribute keyword, a tag or a QIDO-RS parameter`)
}

function parseCount(param: string, raw: string, min: number): number {
  const n = /^\d{1,15}$/.test(raw.trim()) ? Number(raw.trim()) : NaN
  if (!(n >= min)) bad(param, min > 0 ? `"${raw}" is not a positive integer` : `"${raw}" is not a non-negative integer`)
  return n
}

function parseBool(param: string, raw: string): boolean {
  if (raw === 'true' || raw === 'false') return raw === 'true'
  return bad(param, `"${raw}" is neither true nor false`)
}

/**
 * Parses the query parameters of a QIDO-RS Search (PS3.18 10.6.1, 8.3.4) at
 * `level`, for the resource `opts.scope` names.
 *
 * - Matching keys: `{attributeID}={value}`, the attribute by keyword or tag.
 *   A key must belong to the level searched or one above it (see
 *   `attributeLevel`): `Modality` is refused in a study search, where
 *   `ModalitiesInStudy` stands for it; a tag the dictionary lacks is
 *   instance level. A sequence key with an empty value is a return key;
 *   with a value, or as a path (`A.B`), it is refused (no sequence matching);
 *   binary attributes cannot be matched. A key is given once, except a UID
 *   key whose repeats extend its UID list. Values are checked for their VR
 *   (see {@link runQido} for the matching rules).
 * - `includefield`: repeatable and comma-separated; keywords, tags or `all`.
 * - `limit` (a positive integer, capped at `opts.maxLimit`, default
 *   {@link QIDO_MAX_LIMIT}, which is also the limit when none is given),
 *   `offset` (a non-negative integer), `fuzzymatching` (`true` | `false`),
 *   `emptyvaluematching` (`true` | `false`: accepted, not supported: `true`
 *   adds the warning PS3.18 8.3.4.5 asks for). `accept` and `charset` (PS3.18
 *   8.3.3) are left to the caller and ignored here.
 * - `scope.study` is for series and instance searches, `scope.series` for an
 *   instance search inside `scope.study`; both must be UIDs.
 *
 * Throws DICOMWEB_BAD_QUERY, its message naming the parameter, for an unknown
 * parameter or keyword, a malformed tag, a parameter given twice, a value its
 * VR does not allow (a malformed date, a range whose start is after its end,
 * a wildcard in a UID, a number that is none, ...).
 */
export function parseQidoQuery(
  level: QidoLevel,
  params: URLSearchParams,
  opts: { scope?: { study?: string; series?: string }; maxLimit?: number } = {},
): QidoQuery {
  const maxLimit = opts.maxLimit ?? QIDO_MAX_LIMIT
  const scope = { ...opts.scope }
  if (scope.study !== undefined && (level === 'study' || !isUid(scope.study)))
    bad('StudyInstanceUID', `study scope "${scope.study}" does not fit a ${level} search`)
  if (scope.series !== undefined && (level !== 'instance' || scope.study === undefined || !isUid(scope.series))) {
    bad('SeriesInstanceUID', `series scope "${scope.series}" does not fit a ${level} search`)
  }
  const q: QidoQuery = { level, scope, keys: [], includeFields: [], includeAll: false, fuzzy: false, limit: maxLimit, offset: 0, warnings: [] }
  const once = new Set<string>()
  const byTag = new Map<string, QidoMatchKey>()
  for (const [name, raw] of params) {
    const control = name.toLowerCase()
    if (['limit', 'offset', 'fuzzymatching', 'emptyvaluematching'].includes(control)) {
      if (once.has(control)) bad(name, 'given more than once')
      once.add(control)
    }
    if (control === 'limit') q.limit = Math.min(parseCount(name, raw, 1), maxLimit)
    else if (control === 'offset') q.offset = parseCount(name, raw, 0)
    else if (control === 'fuzzymatching') q.fuzzy = parseBool(name, raw)
    else if (control === 'emptyvaluematching') {
      if (parseBool(name, raw)) q.warnings.push('The emptyvaluematching parameter is not supported. Empty Value Matching has not been performed.')
    } else if (control === 'includefield') {
      for (const part of raw.split(',').map((p) => p.trim())) {
        if (part === 'all') q.includeAll = true
        else if (part !== '') q.includeFields.push(resolveTag(`includefield (${part})`, part))
      }
    } else if (control !== 'accept' && control !== 'charset') {
      const tag = resolveTag(name, name)
      const vr = attributeByTag(tag)?.vr
      const value = raw.trim()
      const lvl = attributeLevel(tag)
      if (lvl !== 'all' && RANK[lvl] > RANK[level]) bad(name, `a ${lvl}-level attribute is not a matching key of a ${level} search`)
      if ((vr === 'SQ' || (vr !== undefined && BINARY_VRS.has(vr))) && value === '') {
        q.includeFields.push(tag)
        continue
      }
      const prior = byTag.get(tag)
      if (prior === undefined) {
        const key: QidoMatchKey = { tag, value, param: name }
        if (vr !== undefined) key.vr = vr
        byTag.set(tag, key)
        q.keys.push(key)
      } else if (vr === 'UI' && prior.value !== '' && value !== '') prior.value = `${prior.value}\\${value}`
      else bad(name, 'given more than once')
    }
  }
  validateQidoKeys(q)
  return q
}

/**
 * Checks every matching key of a query built by hand (a DIMSE C-FIND's
 * identifier) for its VR, as {@link parseQidoQuery} does: throws
 * DICOMWEB_BAD_QUERY naming the key's `param` for a value its VR does not
 * allow (a malformed date or range, a wildcard in a UID, ...).
 */
export function validateQidoKeys(q: QidoQuery): void {
  for (const key of q.keys) if (key.vr !== undefined) compileKey(key, key.vr, q.fuzzy)
}

// --- matching (PS3.4 C.2.2.2) ---

type ValueTest = (v: DicomValue) => boolean
type ElementTest = (el: DicomElement | undefined) => boolean

/**
 * A matcher for a C-FIND wildcard pattern: `*` any run of characters, `?`
 * exactly one. Matched without regular expressions, by the greedy
 * two-pointer method (at most pattern x value steps), so a pattern of many
 * stars cannot make a query backtrack for seconds (`***********Z` took 6.5 s
 * as a regular expression and held the node's event loop).
 */
function wildcard(pattern: string, opts: { prefix?: boolean; caseless?: boolean } = {}): { test(value: string): boolean } {
  const caseless = opts.caseless === true
  const p = [...(caseless ? pattern.toLowerCase() : pattern)]
  if (opts.prefix === true) p.push('*')
  return {
    test(value: string): boolean {
      const v = [...(caseless ? value.toLowerCase() : value)]
      let i = 0
      let j = 0
      let star = -1
      let mark = 0
      while (i < v.length) {
        if (j < p.length && (p[j] === '?' || (p[j] !== '*' && p[j] === v[i]))) {
          i++
          j++
        } else if (j < p.length && p[j] === '*') {
          star = j++
          mark = i
        } else if (star >= 0) {
          j = star + 1
          i = ++mark
        } else return false
      }
      while (j < p.length && p[j] === '*') j++
      return j === p.length
    },
  }
}

const DAY_MS = 86_400_000

/** Milliseconds of a UTC calendar date, or undefined when it is no date. */
function utc(y: number, mo: number, d: number, h = 0, mi = 0, s = 0): number | undefined {
  const t = Date.UTC(y, mo - 1, d, h, mi, Math.min(s, 59))
  const back = new Date(t)
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || h > 23 || mi > 59 || s > 60) return undefined
  return t + (s === 60 ? 1000 : 0)
}

/** Microseconds of a fraction of a second given with 1-6 digits, for the earliest and the latest instant it covers. */
function fraction(f: string | undefined): [number, number] {
  if (f === undefined) return [0, 999_999]
  const scale = 10 ** (6 - f.length)
  return [Number(f) * scale, Number(f) * scale + scale - 1]
}

/**
 * The earliest and latest instant a DA, TM or DT value covers: days for DA,
 * microseconds of the day for TM, milliseconds since the epoch (UTC, a
 * fraction for microseconds) for DT; undefined when malformed. A partial TM
 * (`HH`, `HHMM`) or DT (`YYYY`, `YYYYMM`, ...) covers every instant it names.
 */
function bounds(vr: string, s: string): [number, number] | undefined {
  if (vr === 'DA') {
    const m = /^(\d{4})(\d{2})(\d{2})$/.exec(s)
    const t = m === null ? undefined : utc(Number(m[1]), Number(m[2]), Number(m[3]))
    return t === undefined ? undefined : [t / DAY_MS, t / DAY_MS]
  }
  if (vr === 'TM') {
    const m = /^(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,6}))?)?)?$/.exec(s)
    if (m === null) return undefined
    const [h, mi, sec] = [Number(m[1]), m[2], m[3]]
    if (h > 23 || Number(mi ?? 0) > 59 || Number(sec ?? 0) > 60) return undefined
    const base = (n: string | undefined, fill: number): number => (n === undefined ? fill : Number(n))
    const [f0, f1] = fraction(m[4])
    const lo = ((h * 60 + base(mi, 0)) * 60 + base(sec, 0)) * 1e6 + (m[4] === undefined ? 0 : f0)
    const hi = ((h * 60 + base(mi, 59)) * 60 + base(sec, 59)) * 1e6 + (m[4] === undefined ? 999_999 : f1)
    return [lo, hi]
  }
  const m = /^(\d{4})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,6}))?)?)?)?)?)?([+-]\d{4})?$/.exec(s)
  if (m === null) return undefined
  const n = (i: number): number | undefined => (m[i] === undefined ? undefined : Number(m[i]))
  const [y, mo, d, h, mi, sec] = [Number(m[1]), n(2), n(3), n(4), n(5), n(6)]
  const offset = m[8] === undefined ? 0 : (m[8].startsWith('-') ? -1 : 1) * (Number(m[8].slice(1, 3)) * 60 + Number(m[8].slice(3))) * 60_000
  if (m[8] !== undefined && (Number(m[8].slice(1, 3)) > 14 || Number(m[8].slice(3)) > 59)) return undefined
  const lastDay = new Date(Date.UTC(y, mo ?? 12, 0)).getUTCDate()
  const lo = utc(y, mo ?? 1, d ?? 1, h ?? 0, mi ?? 0, sec ?? 0)
  const hi = utc(y, mo ?? 12, d ?? lastDay, h ?? 23, mi ?? 59, sec ?? 59)
  if (lo === undefined || hi === undefined || (mo !== undefined && mo > 12)) return undefined
  const [f0, f1] = fraction(m[7])
  return [lo - offset + (m[7] === undefined ? 0 : f0 / 1000), hi - offset + (m[7] === undefined ? 999.999 : f1 / 1000)]
}

/** A DA / TM / DT value or range (`a-b`, `a-`, `-b`, PS3.4 C.2.2.2.5) as an inclusive interval. */
function range(param: string, vr: string, s: string): [number, number] {
  const single = bounds(vr, s)
  if (single !== undefined) return single
  let reversed = false
  for (let i = s.indexOf('-'); i >= 0; i = s.indexOf('-', i + 1)) {
    const [a, b] = [s.slice(0, i), s.slice(i + 1)]
    if (a === '' && b === '') break
    const lo = a === '' ? -Infinity : bounds(vr, a)?.[0]
    const hi = b === '' ? Infinity : bounds(vr, b)?.[1]
    if (lo === undefined || hi === undefined) continue
    if (lo <= hi) return [lo, hi]
    reversed = true
  }
  return bad(param, reversed ? `bad ${vr} range "${s}": its start is after its end` : `"${s}" is not a ${vr} value or range`)
}

/** The instant a stored DA / TM / DT value stands for (its earliest), tolerating the old `YYYY.MM.DD` and `HH:MM:SS` forms. */
function point(vr: string, v: DicomValue): number | undefined {
  if (typeof v !== 'string') return undefined
  const s = vr === 'DA' ? v.trim().replace(/\./g, '') : vr === 'TM' ? v.trim().replace(/:/g, '') : v.trim()
  return bounds(vr, s)?.[0]
}

/** The component groups of a stored PN value (an object, or text `A=I=P`), trailing `^` and spaces dropped. */
function pnGroups(v: DicomValue): string[] {
  const groups = typeof v === 'string' ? v.split('=') : typeof v === 'object' && v !== null && !(v instanceof ArrayBuffer) ? pnParts(v as PersonName) : []
  return groups.map((g) => (typeof g === 'string' ? g.replace(/[\^\s]+$/, '').trim() : ''))
}

function pnParts(pn: PersonName): (string | undefined)[] {
  return [pn.Alphabetic, pn.Ideographic, pn.Phonetic]
}

/**
 * A PN pattern. Without fuzzy matching: the whole component group must match
 * the pattern, case-sensitively, wildcards allowed, trailing empty components
 * ignored. With fuzzy matching: case-insensitive, and every word of the
 * pattern (split at `^`, spaces and commas) must match the start of some word
 * of the group. A pattern with `=` is matched group by group (an empty group
 * matches anything); one without is matched against each group present.
 */
function pnTest(pattern: string, fuzzy: boolean): ValueTest {
  const groupTest = (p: string): ((g: string) => boolean) => {
    if (!fuzzy) {
      const re = wildcard(p.replace(/[\^\s]+$/, ''))
      return (g) => re.test(g)
    }
    const words = p.split(FUZZY_WORDS).filter((w) => w !== '')
    const res = words.map((w) => wildcard(w, { prefix: true, caseless: true }))
    return (g) => {
      const names = g.split(/[\^\s]+/).filter((w) => w !== '')
      return res.every((re) => names.some((n) => re.test(n)))
    }
  }
  if (pattern.includes('=')) {
    const tests = pattern.split('=').map((p) => (p.trim() === '' ? undefined : groupTest(p.trim())))
    return (v) => {
      const groups = pnGroups(v)
      return tests.every((t, i) => t === undefined || t(groups[i] ?? ''))
    }
  }
  const t = groupTest(pattern)
  return (v) => pnGroups(v).some((g) => g !== '' && t(g))
}

function asNumber(v: DicomValue): number | undefined {
  if (typeof v === 'number') return v
  if (typeof v === 'bigint') return Number(v)
  if (typeof v === 'string' && NUMBER_RE.test(v.trim())) return Number(v.trim())
  return undefined
}

function atText(v: DicomValue): string | undefined {
  if (typeof v === 'number') return v.toString(16).toUpperCase().padStart(8, '0')
  return typeof v === 'string' ? v.trim().toUpperCase() : undefined
}

/**
 * The test of one matching key for a VR (PS3.4 C.2.2.2), or DICOMWEB_BAD_QUERY
 * when the value does not suit the VR. An element matches when any of its
 * values matches any value of the key (`\`-separated; for UI also `,`).
 */
function compileKey(key: QidoMatchKey, vr: string, fuzzy: boolean): ElementTest {
  const v = key.value
  if (v === '') return () => true
  if (vr === 'SQ') bad(key.param, 'sequence matching is not supported')
  if (BINARY_VRS.has(vr)) bad(key.param, `attributes of VR ${vr} cannot be matched`)
  const parts = (vr === 'UI' ? v.split(/[\\,]/) : TEXT_VRS.has(vr) ? [v] : v.split('\\')).map((p) => p.trim())
  if (parts.some((p) => p === '')) bad(key.param, `empty value in the list "${v}"`)
  let one: ValueTest
  if (vr === 'UI') {
    for (const p of parts) {
      if (/[*?]/.test(p)) bad(key.param, 'wildcards are not allowed in a UID')
      if (!isUid(p)) bad(key.param, `"${p}" is not a UID`)
    }
    const uids = new Set(parts)
    one = (x) => typeof x === 'string' && uids.has(x.trim())
  } else if (vr === 'DA' || vr === 'TM' || vr === 'DT') {
    const ranges = parts.map((p) => range(key.param, vr, p))
    one = (x) => {
      const t = point(vr, x)
      return t !== undefined && ranges.some(([lo, hi]) => t >= lo && t <= hi)
    }
  } else if (NUMERIC_VRS.has(vr)) {
    const nums = parts.map((p) => (NUMBER_RE.test(p) ? Number(p) : bad(key.param, `"${p}" is not a number`)))
    one = (x) => {
      const n = asNumber(x)
      return n !== undefined && nums.includes(n)
    }
  } else if (vr === 'AS' || vr === 'AT') {
    const exact = new Set(vr === 'AT' ? parts.map((p) => p.toUpperCase()) : parts)
    one = (x) => {
      const s = vr === 'AT' ? atText(x) : typeof x === 'string' ? x.trim() : undefined
      return s !== undefined && exact.has(s)
    }
  } else {
    if (parts.every((p) => /^\*+$/.test(p))) return () => true
    if (vr === 'PN') {
      const tests = parts.map((p) => pnTest(p, fuzzy))
      one = (x) => tests.some((t) => t(x))
    } else {
      const res = parts.map((p) => wildcard(p))
      one = (x) => typeof x === 'string' && res.some((re) => re.test(x.trim()))
    }
  }
  return (el) => (el?.Value ?? []).some((x) => x !== null && x !== undefined && one(x))
}

// --- levels and copies ---

function binarySize(el: DicomElement): number {
  let n = 0
  for (const v of el.Value ?? []) if (v instanceof ArrayBuffer || ArrayBuffer.isView(v)) n += v.byteLength
  return n
}

function isEmptyValue(v: DicomValue, vr: string): boolean {
  if (v === null || v === undefined || v === '') return true
  return vr === 'PN' && typeof v === 'object' && pnParts(v as PersonName).every((c) => c === undefined || c === '')
}

/**
 * A deep copy of an element as plain objects, without dcmjs's `_rawValue`;
 * values that are all empty become no `Value` (PS3.18 F.2.5). Binary elements
 * (a binary VR, or binary values) are kept only up to `binaryLimit` bytes
 * (copied), else dropped (undefined); -1 drops them all, in sequence items too.
 */
function copyElement(el: DicomElement, binaryLimit: number): DicomElement | undefined {
  const size = binarySize(el)
  if ((BINARY_VRS.has(el.vr) || size > 0) && (binaryLimit < 0 || size > binaryLimit)) return undefined
  const values = (el.Value ?? []).map((v): DicomValue => {
    if (v === null || v === undefined) return null
    if (typeof v !== 'object') return v
    if (v instanceof ArrayBuffer) return v.slice(0)
    if (ArrayBuffer.isView(v)) return v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength) as ArrayBuffer
    if (v instanceof String || v instanceof Number) return v.valueOf()
    if (el.vr === 'PN') {
      const pn: PersonName = {}
      for (const k of ['Alphabetic', 'Ideographic', 'Phonetic'] as const) if (typeof (v as PersonName)[k] === 'string') pn[k] = (v as PersonName)[k] as string
      return pn
    }
    return copyDataset(v as DicomDataset, binaryLimit)
  })
  const out: DicomElement = { vr: el.vr }
  if (values.some((v) => !isEmptyValue(v, el.vr))) out.Value = values
  return out
}

function copyDataset(ds: DicomDataset, binaryLimit: number): DicomDataset {
  const out: DicomDataset = {}
  for (const tag of Object.keys(ds).sort()) {
    const el = ds[tag]
    const copy = el === undefined || tag.endsWith('0000') ? undefined : copyElement(el, binaryLimit)
    if (copy !== undefined) out[tag.toUpperCase()] = copy
  }
  return out
}

/** Largest binary element {@link splitLevels} keeps, in bytes. */
const KEPT_BINARY_BYTES = 1024
const BULK_TAGS = new Set(['7FE00008', '7FE00009', '7FE00010', 'FFFCFFFC'])

/**
 * Splits the dataset of one instance into the levels the index keeps, as
 * copies (plain objects, no `_rawValue`, sorted by tag). The rule is
 * `attributeLevel`: the Patient module and groups 0010 / 0012, the General
 * Study and Patient Study modules go to `study`; the General Series and
 * General Equipment modules and their kin (Modality, Series Instance UID /
 * Number / Description / Date / Time, Body Part Examined, Performed Procedure
 * Step Start Date / Time, Request Attributes Sequence, ...) to `series`;
 * everything else, private tags included, to `instance`; Specific Character
 * Set (and the per-level Instance Availability and Retrieve URL, should a file
 * hold them) to every level. Bulk data is dropped: Pixel Data (and Float /
 * Double Float Pixel Data), Data Set Trailing Padding, group lengths, file
 * meta (group 0002), and every binary element (OB, OW, UN, ... or binary
 * values) over 1 KiB, in sequence items too.
 */
export function splitLevels(ds: DicomDataset): IndexedInstance {
  const out: IndexedInstance = { study: {}, series: {}, instance: {} }
  for (const tag of Object.keys(ds).sort()) {
    const t = tag.toUpperCase()
    const el = ds[tag]
    if (el === undefined || BULK_TAGS.has(t) || t.startsWith('0002') || t.endsWith('0000')) continue
    const lvl = attributeLevel(t)
    for (const l of lvl === 'all' ? LEVELS : [lvl]) {
      const copy = copyElement(el, KEPT_BINARY_BYTES)
      if (copy !== undefined) out[l][t] = copy
    }
  }
  return out
}

// --- the search ---

interface SeriesNode {
  uid: string
  ds: DicomDataset
  instances: Map<string, DicomDataset>
}

interface StudyNode {
  uid: string
  ds: DicomDataset
  series: Map<string, SeriesNode>
}

/** One candidate result: its views from its own level up to the study (own level first). */
interface Row {
  chain: DicomDataset[]
  /** The level of each dataset of `chain`. */
  levels: QidoLevel[]
  study: StudyNode
  series?: SeriesNode
  sop?: string
  instance?: DicomDataset
}

function uidOf(ds: DicomDataset, tag: string): string | undefined {
  return firstString(ds, tag)?.trim()
}

function lookup(chain: DicomDataset[], tag: string): DicomElement | undefined {
  for (const ds of chain) if (ds[tag] !== undefined) return ds[tag]
  return undefined
}

function element(vr: string, ...values: DicomValue[]): DicomElement {
  return { vr, Value: values }
}

function compareStrings(a: string | undefined, b: string | undefined): number {
  if (a === b) return 0
  if (a === undefined) return 1
  if (b === undefined) return -1
  return a < b ? -1 : 1
}

function compareNumbers(a: number | undefined, b: number | undefined): number {
  if (a === b) return 0
  if (a === undefined) return 1
  if (b === undefined) return -1
  return a - b
}

/**
 * Runs a parsed query over the instances the node may show and builds the
 * answer. `retrieveBase` is the DICOMweb service root (no trailing `/`
 * needed); each result's Retrieve URL is `{base}/studies/{s}`,
 * `{base}/studies/{s}/series/{r}` or `{base}/studies/{s}/series/{r}/instances/{i}`.
 *
 * Grouping: instances are grouped by Study, Series and SOP Instance UID (an
 * instance lacking one is skipped; a repeated SOP Instance UID counts once);
 * the study and series attributes are those of the first instance seen. The
 * scope keeps one study / series. Computed per result: Modalities in Study and
 * SOP Classes in Study (distinct values over the study's series / instances,
 * sorted), Number of Study Related Series / Instances, Number of Series
 * Related Instances, Instance Availability `ONLINE`, Retrieve URL; they
 * replace stored values and can be matched like any attribute.
 *
 * Matching (PS3.4 C.2.2.2): every key must match (AND); a key is looked up at
 * the result's level, then the levels above it. An empty value, or a pattern
 * of `*` only, matches everything, absent attributes too; otherwise an
 * absent or empty attribute never matches. A multi-valued attribute matches
 * when any value does; a key value with `\` (for UI also `,`) matches when
 * any of its values does (UID list matching, extended to every VR but LT, ST,
 * UT and UR).
 * - UI: exact; wildcards refused.
 * - DA, TM, DT: range matching: `a-b`, `a-`, `-b`, inclusive; a single value
 *   is the range it covers (TM `0800` is 08:00:00 to 08:00:59.999999; DT
 *   `2020` the whole year). TM takes `HH`, `HHMM`, `HHMMSS`, `HHMMSS.F{1-6}`.
 *   DT offsets (`&ZZXX`) are honoured; a DT without one is compared as
 *   written (as if UTC). Date and time are matched apart (no combined
 *   date-time matching).
 * - Numeric VRs (IS, DS, US, SS, UL, SL, FL, FD, SV, UV): numeric equality;
 *   AS and AT: exact.
 * - Other string VRs (AE, CS, SH, LO, UC, LT, ST, UT, UR): single value
 *   matching with wildcards (`*` any run, `?` one character), case-sensitive,
 *   leading and trailing spaces not significant.
 * - PN: matched against each component group present (Alphabetic, Ideographic,
 *   Phonetic), or group by group when the key has `=`; case-sensitive, the
 *   whole group, wildcards allowed, trailing `^` ignored. With
 *   `fuzzymatching=true`: case-insensitive, and every word of the key (split
 *   at `^`, spaces, commas) need only match the start of some name component
 *   (`smi^jo` matches `Smith^John`).
 * - A key whose tag the dictionary lacks is matched by the VR of the stored
 *   element; a value that VR refuses matches nothing.
 *
 * Order: studies by Study Date, latest first (no date last), then Study
 * Instance UID; series by Study Instance UID, Series Number (none last),
 * Series Instance UID; instances by Study Instance UID, Series Number, Series
 * Instance UID, Instance Number (none last), SOP Instance UID. `total` counts
 * the matches before `offset` and `limit`; `warning` (for a `Warning: 299`
 * header) says how many more results could be requested, and carries the
 * query's own warnings.
 *
 * Each result holds, sorted by tag: the level's {@link QIDO_DEFAULTS} (and
 * those of the levels above when the search is not scoped to them: study
 * attributes for `/series`, study and series ones for `/instances`, series
 * ones for `/studies/{s}/instances`, as PS3.18 10.6.3.3 asks); every matching
 * key; each `includefield` attribute of the level or above (a lower level's is
 * not returned); for `all`, every attribute of those levels. An attribute
 * without data is returned empty (`{ vr }`, PS3.18 F.2.5), its VR from the
 * dictionary (a tag the dictionary lacks is then left out). Binary elements
 * are never returned. Values are copies: nothing is shared with `instances`.
 *
 * Throws DICOMWEB_BAD_QUERY when a key's value does not suit its VR (a query
 * built by hand; {@link parseQidoQuery} checks them).
 */
export function runQido(
  query: QidoQuery,
  instances: Iterable<IndexedInstance>,
  retrieveBase: string,
): { results: DicomDataset[]; total: number; warning?: string } {
  const base = retrieveBase.replace(/\/+$/, '')
  const { scope, level } = query
  // Group.
  const studies = new Map<string, StudyNode>()
  for (const inst of instances) {
    const [st, se, sop] = [uidOf(inst.study, STUDY_UID), uidOf(inst.series, SERIES_UID), uidOf(inst.instance, SOP_UID)]
    if (st === undefined || se === undefined || sop === undefined) continue
    if (scope.study !== undefined && st !== scope.study) continue
    let study = studies.get(st)
    if (study === undefined) studies.set(st, (study = { uid: st, ds: inst.study, series: new Map() }))
    let series = study.series.get(se)
    if (series === undefined) study.series.set(se, (series = { uid: se, ds: inst.series, instances: new Map() }))
    if (!series.instances.has(sop)) series.instances.set(sop, inst.instance)
  }
  // Views: each level's attributes with those computed for it.
  const url = (...uids: string[]): DicomElement => {
    const names = ['studies', 'series', 'instances']
    return element('UR', base + uids.map((u, i) => `/${names[i]}/${encodeURIComponent(u)}`).join(''))
  }
  const online = element('CS', 'ONLINE')
  const studyView = (s: StudyNode): DicomDataset => {
    const series = [...s.series.values()]
    const distinct = (vals: (string | undefined)[]): DicomValue[] => [...new Set(vals.filter((x): x is string => x !== undefined))].sort()
    const instanceCount = series.reduce((n, r) => n + r.instances.size, 0)
    return {
      ...s.ds,
      '00080056': online,
      '00080061': element('CS', ...distinct(series.map((r) => firstString(r.ds, '00080060')?.trim()))),
      '00080062': element('UI', ...distinct(series.flatMap((r) => [...r.instances.values()].map((i) => firstString(i, '00080016')?.trim())))),
      '00081190': url(s.uid),
      '00201206': element('IS', series.length),
      '00201208': element('IS', instanceCount),
    }
  }
  const seriesView = (s: StudyNode, r: SeriesNode): DicomDataset => ({
    ...r.ds,
    '00080056': online,
    '00081190': url(s.uid, r.uid),
    '00201209': element('IS', r.instances.size),
  })
  const rows: Row[] = []
  for (const study of studies.values()) {
    const sv = studyView(study)
    if (level === 'study') {
      rows.push({ chain: [sv], levels: ['study'], study })
      continue
    }
    for (const series of study.series.values()) {
      if (scope.series !== undefined && series.uid !== scope.series) continue
      const rv = seriesView(study, series)
      if (level === 'series') rows.push({ chain: [rv, sv], levels: ['series', 'study'], study, series })
      else {
        for (const [sop, ds] of series.instances) {
          // The instance's own values behind a small overlay of the computed ones: no copy of the whole dataset per row.
          const computed = { '00080056': online, '00081190': url(study.uid, series.uid, sop) }
          rows.push({ chain: [computed, ds, rv, sv], levels: ['instance', 'instance', 'series', 'study'], study, series, sop, instance: ds })
        }
      }
    }
  }
  // Match.
  const tests = query.keys.map((key) => {
    const byVr = new Map<string, ElementTest>()
    return (chain: DicomDataset[]): boolean => {
      const found = lookup(chain, key.tag)
      const vr = key.vr ?? found?.vr
      if (vr === undefined) return /^\**$/.test(key.value)
      let test = byVr.get(vr)
      if (test === undefined) {
        try {
          test = compileKey(key, vr, query.fuzzy)
        } catch (err) {
          if (key.vr !== undefined) throw err
          test = () => false
        }
        byVr.set(vr, test)
      }
      return test(found)
    }
  })
  const matches = rows.filter((row) => tests.every((t) => t(row.chain)))
  // Order.
  const seriesNumber = (r: Row): number | undefined => (r.series === undefined ? undefined : firstNumber(r.series.ds, '00200011'))
  matches.sort((a, b) => {
    if (level === 'study') {
      const [da, db] = [firstString(a.study.ds, '00080020'), firstString(b.study.ds, '00080020')]
      if (da !== db) return da === undefined ? 1 : db === undefined ? -1 : da < db ? 1 : -1
      return compareStrings(a.study.uid, b.study.uid)
    }
    return (
      compareStrings(a.study.uid, b.study.uid) ||
      compareNumbers(seriesNumber(a), seriesNumber(b)) ||
      compareStrings(a.series?.uid, b.series?.uid) ||
      compareNumbers(a.instance && firstNumber(a.instance, '00200013'), b.instance && firstNumber(b.instance, '00200013')) ||
      compareStrings(a.sop, b.sop)
    )
  })
  // Page and build.
  const page = matches.slice(query.offset, query.offset + query.limit)
  const concerned = new Set<QidoLevel>([level])
  if (level !== 'study' && scope.study === undefined) concerned.add('study')
  if (level === 'instance' && scope.series === undefined) concerned.add('series')
  const tags = new Set<string>(query.keys.map((k) => k.tag))
  for (const l of concerned) for (const t of QIDO_DEFAULTS[l]) tags.add(t)
  for (const t of query.includeFields) {
    const lvl = attributeLevel(t)
    if (lvl === 'all' || RANK[lvl] <= RANK[level]) tags.add(t)
  }
  const results = page.map((row) => {
    const wanted = new Set(tags)
    if (query.includeAll) {
      row.chain.forEach((ds, i) => {
        if (concerned.has(row.levels[i] as QidoLevel)) for (const t of Object.keys(ds)) wanted.add(t.toUpperCase())
      })
    }
    const out: DicomDataset = {}
    for (const tag of [...wanted].sort()) {
      const found = lookup(row.chain, tag)
      if (found !== undefined) {
        const copy = tag.endsWith('0000') ? undefined : copyElement(found, -1)
        if (copy !== undefined) out[tag] = copy
      } else {
        const vr = attributeByTag(tag)?.vr
        if (vr !== undefined && !BINARY_VRS.has(vr)) out[tag] = { vr }
      }
    }
    return out
  })
  const warnings = [...query.warnings]
  const remaining = matches.length - query.offset - page.length
  if (remaining > 0) warnings.push(`There are ${remaining} additional results that can be requested`)
  const answer: { results: DicomDataset[]; total: number; warning?: string } = { results, total: matches.length }
  if (warnings.length > 0) answer.warning = warnings.join('; ')
  return answer
}

// --- DICOM JSON ---

/** IS / DS text as a JSON number when it is one and fits a double without loss (at most 15 significant digits), else kept as text (F.2.3). */
function decimal(s: string): number | string | null {
  const t = s.trim()
  if (t === '') return null
  if (!NUMBER_RE.test(t)) return t
  const digits = (t.split(/[eE]/)[0] ?? '').replace(/[^0-9]/g, '').replace(/^0+/, '')
  const n = Number(t)
  return Number.isFinite(n) && digits.length <= 15 ? n : t
}

function jsonValue(v: DicomValue, vr: string): unknown {
  if (v instanceof ArrayBuffer || ArrayBuffer.isView(v)) throw new TypeError(`binary value (VR ${vr}) in a DICOM JSON answer`)
  if (v === null || v === undefined) return null
  if (vr === 'PN') {
    const groups = typeof v === 'string' ? v.split('=') : typeof v === 'object' ? pnParts(v as PersonName) : []
    const out: PersonName = {}
    ;(['Alphabetic', 'Ideographic', 'Phonetic'] as const).forEach((k, i) => {
      const g = groups[i]
      if (typeof g === 'string' && g !== '') out[k] = g
    })
    return Object.keys(out).length === 0 ? null : out
  }
  if (vr === 'AT') return atText(v) ?? null
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString()
  if (typeof v === 'number') return Number.isFinite(v) ? v : null
  if (typeof v === 'string') return vr === 'IS' || vr === 'DS' ? decimal(v) : v === '' ? null : v
  return jsonDataset(v as DicomDataset)
}

function jsonDataset(ds: DicomDataset): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const tag of Object.keys(ds).sort()) {
    const e = ds[tag]
    if (e === undefined || tag.endsWith('0000')) continue
    const { BulkDataURI: uri, InlineBinary: inline } = e as { BulkDataURI?: unknown; InlineBinary?: unknown }
    const values = (e.Value ?? []).map((v) => jsonValue(v, e.vr))
    if (values.some((v) => v !== null)) out[tag.toUpperCase()] = { vr: e.vr, Value: values }
    else if (typeof uri === 'string') out[tag.toUpperCase()] = { vr: e.vr, BulkDataURI: uri }
    else if (typeof inline === 'string') out[tag.toUpperCase()] = { vr: e.vr, InlineBinary: inline }
    else out[tag.toUpperCase()] = { vr: e.vr }
  }
  return out
}

/**
 * The DICOM JSON text (PS3.18 F.2) of QIDO-RS results: an array of objects
 * keyed by tag in ascending order, each `{ vr, Value? }`. PN values are
 * objects of their non-empty component groups; IS and DS are JSON numbers
 * (text kept only when it is no number or would lose digits, as F.2.3
 * allows); SV / UV numbers, or text beyond 2^53; AT `GGGGEEEE` text; SQ items
 * nested objects; an empty value inside a list is `null` and an attribute
 * whose values are all empty has no `Value` (F.2.5). An element without
 * values that carries a `BulkDataURI` or `InlineBinary` string (F.2.6, F.2.7)
 * keeps it. Group lengths are left out. Throws a TypeError when a binary value (ArrayBuffer or typed array)
 * reaches it: QIDO answers carry no bulk data.
 */
export function toDicomJson(results: DicomDataset[]): string {
  return JSON.stringify(results.map(jsonDataset))
}
