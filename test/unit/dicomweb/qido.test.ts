import t from 'tap'
import { readFileSync } from 'node:fs'
import { data } from 'dcmjs'
// By file, not through the folder's index: that loads the whole DICOMweb server, which this unit does not need.
import { attributeByKeyword, attributeByTag, attributeLevel, dictionaryEntries } from '../../../src/dicomweb/attributes.js'
import { DicomwebError } from '../../../src/dicomweb/errors.js'
import { QIDO_DEFAULTS, parseQidoQuery, runQido, splitLevels, toDicomJson, type IndexedInstance, type QidoQuery } from '../../../src/dicomweb/qido.js'
import { parseDicom, type DicomDataset, type DicomValue, type PersonName } from '../../../src/study/index.js'
import { statusOfCode } from '../../../src/util/index.js'
import { sample } from '../study/helpers.js'

const BASE = 'https://node.example/dicomweb'
const CT = '1.2.840.10008.5.1.4.1.1.2'
const MR = '1.2.840.10008.5.1.4.1.1.4'
const [A, B, C] = ['1.2.826.0.1.3680043.10.1', '1.2.826.0.1.3680043.10.2', '1.2.826.0.1.3680043.10.3']

type Field = DicomValue | DicomValue[]

/** A flat instance dataset from keywords (or tags, with a VR: `'00091001/LO'`). */
function dataset(fields: Record<string, Field>): DicomDataset {
  const ds: DicomDataset = {}
  for (const [name, v] of Object.entries(fields)) {
    const [tag, vr] = name.includes('/') ? (name.split('/') as [string, string]) : [attributeByKeyword(name)?.tag, attributeByKeyword(name)?.vr]
    if (tag === undefined || vr === undefined) throw new Error(`no keyword ${name}`)
    const values = Array.isArray(v) ? v : [v]
    ds[tag] = { vr, Value: vr === 'PN' ? values.map((x) => (typeof x === 'string' ? { Alphabetic: x } : x)) : values }
  }
  return ds
}

interface StudySpec {
  uid: string
  study: Record<string, Field>
  series: { uid: string; fields: Record<string, Field>; instances: Record<string, Field>[] }[]
}

const SPECS: StudySpec[] = [
  {
    uid: A,
    study: {
      SpecificCharacterSet: 'ISO_IR 192',
      StudyDate: '20240315',
      StudyTime: '083000.123',
      AccessionNumber: 'ACC001',
      ReferringPhysicianName: 'Welby^Marcus',
      StudyDescription: 'CT CHEST',
      PatientName: 'Doe^John',
      PatientID: 'PID-A',
      IssuerOfPatientID: 'HOSP',
      PatientBirthDate: '19700101',
      PatientSex: 'M',
      PatientAge: '054Y',
      PatientWeight: 81.5,
      StudyID: 'S1',
    },
    series: [
      {
        uid: `${A}.1`,
        fields: {
          Modality: 'CT',
          SeriesNumber: 2,
          SeriesDescription: 'AXIAL 5mm',
          BodyPartExamined: 'CHEST',
          SeriesDate: '20240315',
          SeriesTime: '083500',
          PerformedProcedureStepStartDate: '20240315',
          PerformedProcedureStepStartTime: '083500',
        },
        instances: [
          { InstanceNumber: 3, ImageType: ['ORIGINAL', 'PRIMARY', 'AXIAL'], AcquisitionDateTime: '20240315083501.5' },
          { InstanceNumber: 1, ImageType: ['ORIGINAL', 'PRIMARY', 'AXIAL'], AcquisitionDateTime: '20240315090000+0100', '00091001/LO': 'GE_GENESIS_FF' },
          { InstanceNumber: 2, ImageType: ['ORIGINAL', 'PRIMARY', 'AXIAL'], SliceThickness: '1.5' },
        ],
      },
      { uid: `${A}.2`, fields: { Modality: 'CT', SeriesNumber: 1, SeriesDescription: 'SCOUT', BodyPartExamined: 'CHEST' }, instances: [{ InstanceNumber: 1 }] },
    ],
  },
  {
    uid: B,
    study: {
      StudyDate: '20230601',
      StudyTime: '1415',
      AccessionNumber: 'ACC002',
      ReferringPhysicianName: '',
      StudyDescription: 'MR BRAIN',
      PatientName: { Alphabetic: 'Yamada^Tarou', Ideographic: '山田^太郎', Phonetic: 'やまだ^たろう' },
      PatientID: 'PID-B',
      PatientBirthDate: '19800202',
      PatientSex: 'F',
      StudyID: 'S2',
    },
    series: [
      {
        uid: `${B}.1`,
        fields: { Modality: 'MR', SeriesNumber: '1', SeriesDescription: 'T1 SAG' },
        instances: [
          { InstanceNumber: 1, ImageType: ['ORIGINAL', 'PRIMARY', 'M'] },
          { InstanceNumber: 2, ImageType: ['DERIVED', 'SECONDARY'] },
        ],
      },
      { uid: `${B}.2`, fields: { Modality: 'MR', SeriesNumber: '2', SeriesDescription: 'T2 AX' }, instances: [{ InstanceNumber: 1 }, { InstanceNumber: 2 }] },
    ],
  },
  {
    uid: C,
    study: { StudyDate: '20240315', StudyTime: '235959', PatientName: 'Smith^Anna^Marie', PatientID: 'PID-C', PatientSex: 'F', StudyID: 'S3' },
    series: [
      { uid: `${C}.1`, fields: { Modality: 'CT', SeriesNumber: 1 }, instances: [{ InstanceNumber: 1 }] },
      // The second instance lacks every optional attribute (no Instance Number, Rows, Columns, Bits Allocated).
      { uid: `${C}.2`, fields: { Modality: 'MR', SeriesNumber: 2 }, instances: [{ InstanceNumber: 1 }, { minimal: 'yes' }] },
    ],
  },
]

/** The flat datasets of the fixture, one per instance. */
function fixtureDatasets(): DicomDataset[] {
  const out: DicomDataset[] = []
  for (const s of SPECS) {
    for (const r of s.series) {
      r.instances.forEach((fields, i) => {
        const minimal = fields.minimal !== undefined
        const inst: Record<string, Field> = minimal ? {} : { Rows: 512, Columns: 512, BitsAllocated: 16, ...fields }
        delete inst.minimal
        const modality = r.fields.Modality
        out.push(
          dataset({
            ...s.study,
            ...r.fields,
            ...inst,
            StudyInstanceUID: s.uid,
            SeriesInstanceUID: r.uid,
            SOPInstanceUID: `${r.uid}.${i + 1}`,
            SOPClassUID: modality === 'MR' ? MR : CT,
          }),
        )
      })
    }
  }
  return out
}

const INDEX: IndexedInstance[] = fixtureDatasets().map(splitLevels)

function query(level: 'study' | 'series' | 'instance', q: string, opts?: Parameters<typeof parseQidoQuery>[2]): QidoQuery {
  return parseQidoQuery(level, new URLSearchParams(q), opts)
}

function run(level: 'study' | 'series' | 'instance', q: string, opts?: Parameters<typeof parseQidoQuery>[2], index: Iterable<IndexedInstance> = INDEX) {
  return runQido(query(level, q, opts), index, BASE)
}

const first = (ds: DicomDataset, tag: string): DicomValue | undefined => ds[tag]?.Value?.[0]
/** The unique key of each result: Study, Series or SOP Instance UID. */
const uids = (level: 'study' | 'series' | 'instance', q: string, opts?: Parameters<typeof parseQidoQuery>[2]): unknown[] =>
  run(level, q, opts).results.map((ds) => first(ds, level === 'study' ? '0020000D' : level === 'series' ? '0020000E' : '00080018'))

function badQuery(fn: () => unknown): DicomwebError | undefined {
  try {
    fn()
  } catch (err) {
    if (err instanceof DicomwebError) return err
    throw err
  }
  return undefined
}

t.test('the dictionary agrees with PS3.6 as dcmjs holds it, and levels follow the documented rule', async (t) => {
  const dict = (data as unknown as { DicomMetaDictionary: { dictionary: Record<string, { name: string; vr: string }> } }).DicomMetaDictionary.dictionary
  const entries = dictionaryEntries()
  t.ok(entries.length > 150, 'a dictionary of the common attributes')
  for (const e of entries) {
    const d = dict[`(${e.tag.slice(0, 4)},${e.tag.slice(4)})`]
    const vrs = d?.vr === 'xs' ? ['US', 'SS'] : d?.vr === 'ox' ? ['OB', 'OW'] : [d?.vr]
    t.equal(d?.name, e.keyword, `${e.tag}: keyword`)
    t.ok(vrs.includes(e.vr), `${e.keyword}: VR ${e.vr}`)
  }
  const named = [
    ...['StudyDate', 'StudyTime', 'AccessionNumber', 'ModalitiesInStudy', 'ReferringPhysicianName', 'PatientName', 'PatientID', 'IssuerOfPatientID'],
    ...['PatientBirthDate', 'PatientSex', 'StudyInstanceUID', 'StudyID', 'StudyDescription', 'Modality', 'SeriesInstanceUID', 'SeriesNumber'],
    ...['PerformedProcedureStepStartDate', 'PerformedProcedureStepStartTime', 'RequestAttributesSequence', 'SeriesDescription', 'BodyPartExamined'],
    ...['SOPClassUID', 'SOPInstanceUID', 'InstanceNumber', 'Rows', 'Columns', 'BitsAllocated', 'NumberOfFrames', 'ImageType', 'ReferencedSeriesSequence'],
  ]
  for (const k of named) t.ok(attributeByKeyword(k), `${k} is in the dictionary`)
  for (const tag of Object.values(QIDO_DEFAULTS).flat()) t.ok(attributeByTag(tag), `default ${tag} is in the dictionary`)
  t.equal(attributeByKeyword('patientname')?.tag, '00100010', 'keywords in any letter case')
  t.equal(attributeByTag('0020000d')?.keyword, 'StudyInstanceUID', 'tags in either case')
  t.same(
    ['00100010', '00080020', '00120062', '00080060', '00102210', '00400244', '00280010', '00091001', '00080005'].map(attributeLevel),
    ['study', 'study', 'study', 'series', 'series', 'series', 'instance', 'instance', 'all'],
    'levels: patient and study, series and equipment, the rest, every level',
  )
})

t.test('splitLevels puts each attribute at its level, as a copy without bulk data', async (t) => {
  const ds = fixtureDatasets()[1] as DicomDataset
  ds['7FE00010'] = { vr: 'OW', Value: [new ArrayBuffer(2048)] }
  ds['00431029'] = { vr: 'OB', Value: [new ArrayBuffer(2068)] }
  ds['00431028'] = { vr: 'OB', Value: [new Uint8Array([1, 2, 3]).buffer] }
  ds['00080005'] = { vr: 'CS', Value: ['ISO_IR 192'], _rawValue: ['ISO_IR 192'] }
  ds['00102210'] = { vr: 'CS', Value: ['BIPED'] }
  const lv = splitLevels(ds)
  t.ok(lv.study['00100010'] && lv.study['0020000D'] && lv.study['00080020'] && lv.study['00101010'], 'patient and study attributes at the study level')
  t.ok(lv.series['00080060'] && lv.series['0020000E'] && lv.series['00200011'] && lv.series['00400244'] && lv.series['00102210'], 'series attributes')
  t.ok(lv.instance['00080018'] && lv.instance['00280010'] && lv.instance['00200013'] && lv.instance['00091001'], 'instance and private attributes')
  for (const l of ['study', 'series', 'instance'] as const)
    t.same(lv[l]['00080005'], { vr: 'CS', Value: ['ISO_IR 192'] }, `character set at the ${l} level, no _rawValue`)
  t.notOk(lv.study['00080060'] ?? lv.instance['00080060'] ?? lv.series['00100010'], 'each attribute at one level only')
  t.notOk(lv.instance['7FE00010'], 'Pixel Data dropped')
  t.notOk(lv.instance['00431029'], 'a binary element over 1 KiB dropped')
  t.equal((lv.instance['00431028']?.Value?.[0] as ArrayBuffer).byteLength, 3, 'a small binary element kept')
  t.not(lv.instance['00431028']?.Value?.[0], ds['00431028']?.Value?.[0], 'binary values copied')
  ;(ds['00100010']?.Value?.[0] as PersonName).Alphabetic = 'Changed^Name'
  t.same(first(lv.study, '00100010'), { Alphabetic: 'Doe^John' }, 'a copy: changing the input changes nothing')
  t.same(Object.keys(lv.instance), Object.keys(lv.instance).sort(), 'sorted by tag')
})

t.test('study search: every study with the default attributes, computed counts and Retrieve URL, in order', async (t) => {
  const r = run('study', '')
  t.equal(r.total, 3, 'three studies')
  t.equal(r.warning, undefined, 'no warning')
  t.same(
    r.results.map((ds) => first(ds, '0020000D')),
    [A, C, B],
    'latest Study Date first, the same date by Study Instance UID',
  )
  for (const ds of r.results) {
    t.same(Object.keys(ds), Object.keys(ds).sort(), 'keys sorted by tag')
    for (const tag of QIDO_DEFAULTS.study) t.ok(ds[tag], `${first(ds, '0020000D')}: default ${tag} present`)
    t.same(ds['00080056'], { vr: 'CS', Value: ['ONLINE'] }, 'Instance Availability')
    t.same(ds['00081190'], { vr: 'UR', Value: [`${BASE}/studies/${first(ds, '0020000D')}`] }, 'Retrieve URL')
  }
  const [a, c, b] = r.results as [DicomDataset, DicomDataset, DicomDataset]
  t.same(a['00080061'], { vr: 'CS', Value: ['CT'] }, 'Modalities in Study of A')
  t.same(c['00080061'], { vr: 'CS', Value: ['CT', 'MR'] }, 'Modalities in Study of C, from its series')
  t.same(
    [a['00201206'], a['00201208']],
    [
      { vr: 'IS', Value: [2] },
      { vr: 'IS', Value: [4] },
    ],
    'A: 2 series, 4 instances',
  )
  t.same(
    [c['00201206'], c['00201208']],
    [
      { vr: 'IS', Value: [2] },
      { vr: 'IS', Value: [3] },
    ],
    'C: 2 series, 3 instances',
  )
  t.same(a['00100010'], { vr: 'PN', Value: [{ Alphabetic: 'Doe^John' }] }, 'Patient Name')
  t.same(b['00100010']?.Value, [{ Alphabetic: 'Yamada^Tarou', Ideographic: '山田^太郎', Phonetic: 'やまだ^たろう' }], 'every component group')
  t.same(c['00080050'], { vr: 'SH' }, 'absent Accession Number: empty, no Value (F.2.5)')
  t.same(c['00100030'], { vr: 'DA' }, 'absent Patient Birth Date: empty')
  t.same(c['00081030'], { vr: 'LO' }, 'absent Study Description: empty')
  t.same(c['00080005'], { vr: 'CS' }, 'absent Specific Character Set: empty')
  t.same(b['00080090'], { vr: 'PN' }, "an empty Referring Physician's Name: no Value")
  t.notOk(a['00101010'], 'an attribute neither default, key nor included is not returned')
  t.notOk(a['00080060'] ?? a['0020000E'], 'no series attributes in a study result')
})

t.test('single value, wildcard and universal matching', async (t) => {
  t.same(uids('study', 'PatientID=PID-A'), [A], 'single value')
  t.same(uids('study', '00100020=PID-A'), [A], 'key by tag')
  t.same(uids('study', 'patientid=PID-A'), [A], 'keyword in another letter case')
  t.same(uids('study', 'PatientID=PID'), [], 'single value matches the whole value only')
  t.same(uids('study', 'AccessionNumber=acc001'), [], 'case-sensitive')
  t.same(uids('study', 'PatientID=PID-?'), [A, C, B], '? is one character')
  t.same(uids('study', 'PatientID=PID-??'), [], '? is exactly one character')
  t.same(uids('study', 'PatientID=*-B'), [B], '* at the start')
  t.same(uids('study', 'StudyDescription=*CHE*'), [A], '* on both sides')
  t.same(uids('study', 'StudyDescription=CT?CHEST'), [A], '? matches a space')
  t.same(uids('study', 'StudyID=S1\\S3'), [A, C], 'a list of values matches any of them')
  t.same(uids('study', 'StudyDescription=MR*'), [B], 'a study without the attribute does not match a value')
  t.same(uids('study', 'StudyDescription=*'), [A, C, B], '* alone is universal: absent attributes match too')
  const r = run('study', 'StudyDescription=&IssuerOfPatientID=')
  t.equal(r.total, 3, 'an empty value matches everything')
  t.same(
    r.results.map((ds) => ds['00100021']),
    [{ vr: 'LO', Value: ['HOSP'] }, { vr: 'LO' }, { vr: 'LO' }],
    'and the key is returned, empty where absent',
  )
  t.same(uids('study', 'PatientSex=F'), [C, B], 'CS')
  t.same(uids('study', 'PatientSex=f'), [], 'CS is case-sensitive')
  t.same(uids('study', 'NumberOfStudyRelatedInstances=3'), [C], 'a computed attribute can be matched')
})

t.test('date, time and date-time range matching', async (t) => {
  t.same(uids('study', 'StudyDate=20240315'), [A, C], 'a single date')
  t.same(uids('study', 'StudyDate=20240101-'), [A, C], 'open end')
  t.same(uids('study', 'StudyDate=-20231231'), [B], 'open start')
  t.same(uids('study', 'StudyDate=20230101-20231231'), [B], 'closed range')
  t.same(uids('study', 'StudyDate=20230601-20230601'), [B], 'inclusive bounds')
  t.same(uids('study', 'StudyDate=20230602-20240314'), [], 'a range between the studies')
  t.same(uids('study', 'StudyDate=20230601\\20240315'), [A, C, B], 'a list of dates')
  t.same(uids('study', 'PatientBirthDate=-19751231'), [A], 'Patient Birth Date range; an absent date never matches')
  t.same(uids('study', 'StudyTime=0800-0900'), [A], 'HHMM bounds: 08:30:00.123 inside')
  t.same(uids('study', 'StudyTime=14'), [B], 'HH: the whole hour (14:15)')
  t.same(uids('study', 'StudyTime=-0830'), [A], 'an upper bound HHMM covers its whole minute (08:30:00.123)')
  t.same(uids('study', 'StudyTime=-0829'), [], 'and not the next one')
  t.same(uids('study', 'StudyTime=2359-'), [C], 'open end')
  t.same(uids('study', 'StudyTime=083000.1-083000.2'), [A], 'fractional seconds')
  t.same(uids('study', 'StudyTime=083000.124-'), [C, B], 'fraction as a lower bound: 08:30:00.123 excluded')
  t.same(uids('study', 'StudyTime=083000.123'), [A], 'a single time with its fraction')
  const dt = (q: string): unknown[] => uids('instance', q, { scope: { study: A, series: `${A}.1` } })
  t.same(dt('AcquisitionDateTime=20240315080000-20240315083000'), [`${A}.1.2`], 'DT with an offset: 09:00+0100 is 08:00 UTC')
  t.same(dt('AcquisitionDateTime=20240315083501'), [`${A}.1.1`], 'DT to the second covers its fraction')
  t.same(dt('AcquisitionDateTime=2024'), [`${A}.1.2`, `${A}.1.1`], 'DT year: the whole year')
  t.same(dt('AcquisitionDateTime=-20231231'), [], 'DT open start')
  t.same(uids('series', 'PerformedProcedureStepStartDate=20240315&PerformedProcedureStepStartTime=0830-0840'), [`${A}.1`], 'series-level date and time')
})

t.test('UID list matching with , and \\ and repeated keys', async (t) => {
  t.same(uids('study', `StudyInstanceUID=${A},${B}`), [A, B], 'comma-separated')
  t.same(uids('study', `StudyInstanceUID=${A}\\${C}`), [A, C], 'backslash-separated')
  t.same(uids('study', `StudyInstanceUID=${A}&StudyInstanceUID=${B}`), [A, B], 'a repeated UID key extends the list')
  t.same(uids('study', `0020000D=${C}`), [C], 'a single UID by tag')
  t.same(uids('study', `StudyInstanceUID=${A}.9`), [], 'no prefix matching for UIDs')
  t.same(uids('instance', `SOPClassUID=${MR}`).length, 6, 'SOP Class UID')
  t.same(uids('series', `SeriesInstanceUID=${B}.2,${C}.1`), [`${B}.2`, `${C}.1`], 'series UIDs')
})

t.test('person name matching: component groups, case, fuzzy matching', async (t) => {
  t.same(uids('study', 'PatientName=Doe^John'), [A], 'exact')
  t.same(uids('study', 'PatientName=Doe^John^^'), [A], 'trailing empty components ignored')
  t.same(uids('study', 'PatientName=doe^john'), [], 'case-sensitive by default')
  t.same(uids('study', 'PatientName=Doe'), [], 'the whole name, not one component')
  t.same(uids('study', 'PatientName=Doe*'), [A], 'wildcard')
  t.same(uids('study', 'PatientName=Sm?th^*'), [C], '? and *')
  t.same(uids('study', 'PatientName=Yamada^Tarou'), [B], 'Alphabetic group')
  t.same(uids('study', 'PatientName=山田^太郎'), [B], 'Ideographic group')
  t.same(uids('study', 'PatientName=やまだ*'), [B], 'Phonetic group')
  t.same(uids('study', 'PatientName=Yamada^Tarou=山田^太郎'), [B], 'group by group')
  t.same(uids('study', 'PatientName==山田*'), [B], 'an empty group matches anything')
  t.same(uids('study', 'PatientName=Yamada^Tarou=鈴木*'), [], 'every given group must match')
  t.same(uids('study', 'PatientName=Tarou'), [], 'not a component alone')
  t.same(uids('study', 'ReferringPhysicianName=Welby*'), [A], "Referring Physician's Name; an empty one does not match")
  const fuzzy = (v: string): unknown[] => uids('study', `fuzzymatching=true&PatientName=${encodeURIComponent(v)}`)
  t.same(fuzzy('doe'), [A], 'fuzzy: case-insensitive prefix of the family name')
  t.same(fuzzy('JO'), [A], 'fuzzy: prefix of the given name')
  t.same(fuzzy('smi^mar'), [C], 'fuzzy: every word a prefix of some component')
  t.same(fuzzy('ann smith'), [C], 'fuzzy: words separated by a space, in any order')
  t.same(fuzzy('ohn'), [], 'fuzzy: a prefix, not a substring')
  t.same(fuzzy('doe^anna'), [], 'fuzzy: every word must match')
  t.same(fuzzy('太'), [B], 'fuzzy: in the Ideographic group too')
  t.same(fuzzy('t?r'), [B], 'fuzzy: wildcards still work')
  t.same(uids('study', 'fuzzymatching=false&PatientName=doe*'), [], 'fuzzymatching=false: literal')
})

t.test('Modalities in Study matches through the series, multi-valued attributes match on any value', async (t) => {
  t.same(uids('study', 'ModalitiesInStudy=MR'), [C, B], 'MR: B and C (C has a CT and an MR series)')
  t.same(uids('study', 'ModalitiesInStudy=CT'), [A, C], 'CT: A and C')
  t.same(uids('study', 'ModalitiesInStudy=CT\\MR'), [A, C, B], 'either')
  t.same(uids('study', 'ModalitiesInStudy=M?'), [C, B], 'wildcard')
  t.same(uids('study', 'ModalitiesInStudy=US'), [], 'none')
  t.same(uids('study', 'ModalitiesInStudy=MR&PatientSex=F&StudyDate=20240101-'), [C], 'with other keys (AND)')
  const ins = (q: string): unknown[] => uids('instance', q, { scope: { study: B } })
  t.same(ins('ImageType=DERIVED'), [`${B}.1.2`], 'Image Type: the first value')
  t.same(ins('ImageType=M'), [`${B}.1.1`], 'Image Type: the third value')
  t.same(ins('ImageType=*ARY'), [`${B}.1.1`, `${B}.1.2`], 'a wildcard on any value')
  t.same(ins('ImageType=AXIAL'), [], 'none')
})

t.test('series search: scope, study attributes, order, counts', async (t) => {
  const all = run('series', '')
  t.equal(all.total, 6, 'six series')
  t.same(
    all.results.map((ds) => first(ds, '0020000E')),
    [`${A}.2`, `${A}.1`, `${B}.1`, `${B}.2`, `${C}.1`, `${C}.2`],
    'by study, then Series Number, then UID',
  )
  const a1 = all.results[1] as DicomDataset
  for (const tag of [...QIDO_DEFAULTS.series, ...QIDO_DEFAULTS.study.filter((x) => x !== '00081190')]) t.ok(a1[tag], `all series: ${tag} present`)
  t.same(a1['00081190']?.Value, [`${BASE}/studies/${A}/series/${A}.1`], 'the series Retrieve URL')
  t.same(a1['00201209'], { vr: 'IS', Value: [3] }, 'Number of Series Related Instances')
  t.same(a1['00100010']?.Value, [{ Alphabetic: 'Doe^John' }], '/series carries the study attributes (PS3.18 10.6.3.3.2)')
  t.same(a1['00080021']?.Value, ['20240315'], 'Series Date')
  t.same(all.results[2]?.['00080021'], { vr: 'DA' }, 'absent Series Date: empty')
  const scoped = run('series', '', { scope: { study: A } })
  t.same(
    scoped.results.map((ds) => first(ds, '0020000E')),
    [`${A}.2`, `${A}.1`],
    '/studies/{A}/series: the series of A',
  )
  t.notOk(scoped.results[0]?.['00100010'], 'a scoped series search does not repeat the study attributes')
  t.same(scoped.results[0]?.['0020000D']?.Value, [A], 'but names the study')
  t.same(uids('series', 'Modality=CT'), [`${A}.2`, `${A}.1`, `${C}.1`], 'Modality')
  t.same(uids('series', 'Modality=MR', { scope: { study: C } }), [`${C}.2`], 'Modality in one study')
  t.same(uids('series', 'SeriesNumber=2'), [`${A}.1`, `${B}.2`, `${C}.2`], 'Series Number (IS stored as number or text)')
  t.same(uids('series', 'SeriesDescription=AX*'), [`${A}.1`], 'Series Description')
  t.same(uids('series', 'BodyPartExamined=CHEST'), [`${A}.2`, `${A}.1`], 'Body Part Examined')
  t.same(uids('series', 'PatientID=PID-B'), [`${B}.1`, `${B}.2`], 'a study attribute as a key of a series search')
  t.same(uids('series', 'ModalitiesInStudy=MR&Modality=CT'), [`${C}.1`], 'the CT series of a study with MR')
  t.same(uids('series', 'RequestAttributesSequence='), uids('series', ''), 'a sequence with an empty value is a return key')
  t.same(uids('series', '', { scope: { study: '1.2.3.4' } }), [], 'an unknown study: nothing')
})

t.test('instance search: scopes, order, defaults, generic matching by tag', async (t) => {
  const series = run('instance', '', { scope: { study: A, series: `${A}.1` } })
  t.same(
    series.results.map((ds) => first(ds, '00200013')),
    [1, 2, 3],
    'by Instance Number',
  )
  const one = series.results[0] as DicomDataset
  for (const tag of QIDO_DEFAULTS.instance) t.ok(one[tag], `default ${tag} present`)
  t.same(one['00081190']?.Value, [`${BASE}/studies/${A}/series/${A}.1/instances/${A}.1.2`], 'the instance Retrieve URL')
  t.same([one['00280010'], one['00280008']], [{ vr: 'US', Value: [512] }, { vr: 'IS' }], 'Rows, and Number of Frames empty when absent')
  t.notOk(one['00080060'] ?? one['00100010'], 'a series-scoped search repeats neither series nor study attributes')
  const study = run('instance', '', { scope: { study: C } })
  t.same(
    study.results.map((ds) => first(ds, '00080018')),
    [`${C}.1.1`, `${C}.2.1`, `${C}.2.2`],
    '/studies/{C}/instances: by series, then Instance Number, none last',
  )
  t.same(study.results[1]?.['00080060']?.Value, ['MR'], '/studies/{s}/instances carries the series attributes')
  t.notOk(study.results[1]?.['00100010'], 'but not the study ones')
  const minimal = study.results[2] as DicomDataset
  for (const tag of ['00200013', '00280010', '00280011', '00280100', '00280008']) t.same(minimal[tag], { vr: attributeByTag(tag)?.vr }, `missing ${tag}: empty`)
  const all = run('instance', '')
  t.equal(all.total, 11, '/instances: every instance')
  t.ok(all.results[0]?.['00100010'] && all.results[0]?.['00080060'], '/instances carries study and series attributes')
  t.same(uids('instance', 'InstanceNumber=2'), [`${A}.1.3`, `${B}.1.2`, `${B}.2.2`], 'Instance Number')
  t.same(uids('instance', 'Rows=512&Modality=MR').length, 5, 'Rows and a series key')
  t.same(uids('instance', 'Rows=512', { scope: { study: C } }), [`${C}.1.1`, `${C}.2.1`], 'an instance without Rows does not match')
  t.same(uids('instance', '00091001=GE_*'), [`${A}.1.2`], 'a private tag the dictionary lacks, matched by the VR of the data')
  t.same(uids('instance', '00091001=*'), uids('instance', ''), 'universal on an unknown tag')
  t.same(uids('instance', '00091001=GE_*&includefield=00091001').length, 1, 'an unknown tag included')
  t.same(run('instance', '00091001=GE_*').results[0]?.['00091001'], { vr: 'LO', Value: ['GE_GENESIS_FF'] }, 'the key is returned with its value and VR')
  t.same(uids('instance', '00191002=1'), [], 'an unknown tag absent everywhere matches nothing')
  t.notOk(run('instance', '00191002=').results[0]?.['00191002'], 'and is not returned (no VR to give it)')
  t.same(uids('instance', 'SliceThickness=1.50'), [`${A}.1.3`], 'DS: numeric equality')
  t.same(uids('instance', 'StudyDate=20230601&InstanceNumber=1'), [`${B}.1.1`, `${B}.2.1`], 'a study key in an instance search')
})

t.test('limit, offset, total and the warning', async (t) => {
  let r = run('study', 'limit=1')
  t.same([r.results.length, r.total, first(r.results[0] as DicomDataset, '0020000D')], [1, 3, A], 'the first of three')
  t.equal(r.warning, 'There are 2 additional results that can be requested', 'a warning when the limit cut the results')
  r = run('study', 'limit=1&offset=1')
  t.same([r.results.map((ds) => first(ds, '0020000D')), r.total], [[C], 3], 'offset 1')
  t.match(r.warning, /There are 1 additional/, 'one more')
  r = run('study', 'offset=2&limit=5')
  t.same([r.results.map((ds) => first(ds, '0020000D')), r.total, r.warning], [[B], 3, undefined], 'the last page: no warning')
  r = run('study', 'offset=10')
  t.same([r.results.length, r.total, r.warning], [0, 3, undefined], 'an offset past the end: nothing, total still 3')
  r = run('study', 'limit=100', { maxLimit: 2 })
  t.same([r.results.length, r.total], [2, 3], 'limit capped at maxLimit')
  t.ok(r.warning, 'with a warning')
  t.equal(query('study', '', { maxLimit: 2 }).limit, 2, 'no limit: maxLimit')
  t.equal(query('study', '').limit, 1000, 'default maxLimit 1000')
  r = run('study', 'emptyvaluematching=true&limit=1')
  t.match(r.warning, /emptyvaluematching parameter is not supported.*; There are 2 additional/, 'warnings joined')
  t.equal(run('study', 'emptyvaluematching=false').warning, undefined, 'emptyvaluematching=false: nothing to say')
})

t.test('includefield: keyword, tag, comma list, repeated, all; lower levels not returned', async (t) => {
  const a = (q: string, level: 'study' | 'series' | 'instance' = 'study'): DicomDataset =>
    run(level, `${q}&${level === 'study' ? `StudyInstanceUID=${A}` : ''}`).results[0] as DicomDataset
  t.same(a('includefield=PatientAge')['00101010'], { vr: 'AS', Value: ['054Y'] }, 'by keyword')
  t.same(a('includefield=00101030')['00101030'], { vr: 'DS', Value: [81.5] }, 'by tag')
  const list = a('includefield=PatientAge,00101030, IssuerOfPatientID')
  t.ok(list['00101010'] && list['00101030'] && list['00100021'], 'a comma-separated list')
  const rep = a('includefield=PatientAge&includefield=PatientWeight')
  t.ok(rep['00101010'] && rep['00101030'], 'repeated')
  t.same(run('study', `includefield=PatientAge&StudyInstanceUID=${C}`).results[0]?.['00101010'], { vr: 'AS' }, 'an included attribute absent: empty')
  const all = a('includefield=all')
  t.ok(all['00101010'] && all['00101030'] && all['00100021'], 'all: every study attribute')
  t.notOk(all['00080060'] ?? all['00280010'], 'all: nothing of the lower levels')
  t.notOk(a('includefield=Modality,Rows')['00080060'], 'a lower-level attribute is not returned (PS3.18 10.6.3.3)')
  const inst = run('instance', 'includefield=PatientAge,SeriesDescription', { scope: { study: A, series: `${A}.1` } }).results[0] as DicomDataset
  t.same([inst['00101010']?.Value, inst['0008103E']?.Value], [['054Y'], ['AXIAL 5mm']], 'higher-level attributes included in an instance search')
  const instAll = run('instance', 'includefield=all', { scope: { study: A, series: `${A}.1` } }).results[0] as DicomDataset
  t.ok(instAll['00080008'] && instAll['00091001'], 'all at the instance level: every instance attribute')
  t.notOk(instAll['00101010'], 'but not the study attributes of a scoped search')
  const seriesAll = run('series', 'includefield=all').results[0] as DicomDataset
  t.ok(seriesAll['00180015'] && seriesAll['00101010'], 'all in /series: series and study attributes')
})

t.test('every bad query is DICOMWEB_BAD_QUERY naming the parameter', async (t) => {
  const cases: [level: 'study' | 'series' | 'instance', q: string, names: string][] = [
    ['study', 'FooBar=1', 'FooBar'],
    ['study', '0010001=x', '0010001'],
    ['study', '001000ZZ=x', '001000ZZ'],
    ['study', '(0010,0010)=x', '(0010,0010)'],
    ['study', '00100000=x', '00100000'],
    ['study', 'StudyDate=2020', 'StudyDate'],
    ['study', 'StudyDate=20201301', 'StudyDate'],
    ['study', 'StudyDate=20200230', 'StudyDate'],
    ['study', 'StudyDate=20200201-20200101', 'StudyDate'],
    ['study', 'StudyDate=2020*', 'StudyDate'],
    ['study', 'StudyDate=-', 'StudyDate'],
    ['study', 'StudyTime=2500', 'StudyTime'],
    ['study', 'StudyTime=08:00', 'StudyTime'],
    ['study', 'StudyTime=1200-0800', 'StudyTime'],
    ['study', 'StudyInstanceUID=1.2.*', 'StudyInstanceUID'],
    ['study', 'StudyInstanceUID=1.2.?', 'StudyInstanceUID'],
    ['study', 'StudyInstanceUID=abc', 'StudyInstanceUID'],
    ['study', 'StudyInstanceUID=1.2,', 'StudyInstanceUID'],
    ['study', 'limit=0', 'limit'],
    ['study', 'limit=-1', 'limit'],
    ['study', 'limit=ten', 'limit'],
    ['study', 'limit=1&limit=2', 'limit'],
    ['study', 'offset=-1', 'offset'],
    ['study', 'offset=1.5', 'offset'],
    ['study', 'fuzzymatching=yes', 'fuzzymatching'],
    ['study', 'emptyvaluematching=1', 'emptyvaluematching'],
    ['study', 'PatientID=A&PatientID=B', 'PatientID'],
    ['study', 'PatientID=A&00100020=B', '00100020'],
    ['study', 'ReferencedSeriesSequence.SeriesInstanceUID=1.2', 'ReferencedSeriesSequence.SeriesInstanceUID'],
    ['series', 'RequestAttributesSequence=x', 'RequestAttributesSequence'],
    ['study', 'Modality=CT', 'Modality'],
    ['series', 'Rows=512', 'Rows'],
    ['instance', 'InstanceNumber=abc', 'InstanceNumber'],
    ['instance', 'Rows=5*', 'Rows'],
    ['instance', 'PixelData=x', 'PixelData'],
    ['study', 'includefield=Nope', 'Nope'],
    ['study', 'includefield=PatientAge,0010', '0010'],
    ['study', 'includefield=RequestAttributesSequence.AccessionNumber', 'RequestAttributesSequence.AccessionNumber'],
  ]
  for (const [level, q, name] of cases) {
    const err = badQuery(() => query(level, q))
    t.equal(err?.code, 'DICOMWEB_BAD_QUERY', `${level} ?${q}: DICOMWEB_BAD_QUERY`)
    t.equal(err?.name, 'DicomwebError', `${q}: a DicomwebError`)
    t.ok(err?.message.includes(name), `${q}: the message names ${name} (${err?.message})`)
  }
  t.match(
    badQuery(() => query('study', 'ReferencedSeriesSequence.SeriesInstanceUID=1'))?.message,
    /sequence matching is not supported/,
    'sequence matching refused',
  )
  t.equal(statusOfCode('DICOMWEB_BAD_QUERY'), 400, 'answered 400')
  for (const [level, scope] of [
    ['study', { study: A }],
    ['series', { study: A, series: `${A}.1` }],
    ['instance', { series: `${A}.1` }],
    ['series', { study: 'not a uid' }],
  ] as const) {
    t.equal(badQuery(() => query(level, '', { scope }))?.code, 'DICOMWEB_BAD_QUERY', `${level} search with scope ${JSON.stringify(scope)} refused`)
  }
  const handmade: QidoQuery = { ...query('study', ''), keys: [{ tag: '00080020', vr: 'DA', value: 'yesterday', param: 'StudyDate' }] }
  t.equal(badQuery(() => runQido(handmade, INDEX, BASE))?.code, 'DICOMWEB_BAD_QUERY', 'runQido checks a query built by hand')
  t.same(query('study', 'accept=application/dicom%2Bjson&includefield=').keys, [], 'accept is left to the caller; an empty includefield is nothing')
})

t.test('order is deterministic whatever the order of the index', async (t) => {
  const shuffled = [...INDEX].reverse()
  shuffled.push(shuffled.shift() as IndexedInstance)
  for (const level of ['study', 'series', 'instance'] as const) {
    t.same(runQido(query(level, ''), shuffled, BASE), runQido(query(level, ''), INDEX, BASE), `${level}: same answer`)
  }
  const twice = runQido(query('study', ''), [...INDEX, ...INDEX], BASE)
  t.same(
    twice.results.map((ds) => ds['00201208']?.Value),
    [[4], [3], [4]],
    'an instance listed twice counts once',
  )
  const noUid = { ...splitLevels(fixtureDatasets()[0] as DicomDataset), instance: {} }
  t.equal(runQido(query('instance', ''), [...INDEX, noUid], BASE).total, 11, 'an instance without a SOP Instance UID is skipped')
})

t.test('results share nothing with the index', async (t) => {
  const before = JSON.stringify(INDEX)
  const r = run('instance', 'includefield=all&PatientName=', { scope: { study: A, series: `${A}.1` } })
  const ds = r.results[0] as DicomDataset
  ;(ds['00100010']?.Value?.[0] as PersonName).Alphabetic = 'Mallory^Eve'
  ;(ds['00080008']?.Value as DicomValue[]).push('CHANGED')
  ds['00200013'] = { vr: 'IS', Value: [99] }
  t.equal(JSON.stringify(INDEX), before, 'changing a result changes nothing in the index')
  const again = run('instance', 'PatientName=', { scope: { study: A, series: `${A}.1` } }).results[0] as DicomDataset
  t.same(again['00100010']?.Value, [{ Alphabetic: 'Doe^John' }], 'the next answer is as before')
  const index = fixtureDatasets().map(splitLevels)
  const held = runQido(query('study', `StudyInstanceUID=${A}`), index, BASE).results[0] as DicomDataset
  ;(index[0]?.study['00100010']?.Value?.[0] as PersonName).Alphabetic = 'Changed^Later'
  t.same(held['00100010']?.Value, [{ Alphabetic: 'Doe^John' }], 'changing the index later does not change a result')
})

t.test('toDicomJson writes the DICOM JSON model (PS3.18 F.2)', async (t) => {
  const text = toDicomJson(run('series', '', { scope: { study: B } }).results)
  const parsed = JSON.parse(text) as Record<string, { vr: string; Value?: unknown[] }>[]
  t.equal(parsed.length, 2, 'an array of the results')
  t.same(parsed[0]?.['00200011'], { vr: 'IS', Value: [1] }, 'IS stored as text is a JSON number')
  t.same(parsed[0]?.['00201209'], { vr: 'IS', Value: [2] }, 'computed counts are numbers')
  t.same(parsed[0]?.['00080021'], { vr: 'DA' }, 'an empty attribute has no Value')
  t.same(Object.keys(parsed[0] ?? {}), Object.keys(parsed[0] ?? {}).sort(), 'keys in tag order')
  const ds: DicomDataset = {
    '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Yamada^Tarou', Ideographic: '山田^太郎', Phonetic: '' }, 'Doe^Jane=ドウ', {}] },
    '00180050': { vr: 'DS', Value: ['1.50', ' -2e3 ', '', 'n/a', '3.14159265358979323846'] },
    '00200013': { vr: 'IS', Value: ['+7'] },
    '00080008': { vr: 'CS', Value: ['ORIGINAL', '', 'AXIAL'] },
    '00080050': { vr: 'SH', Value: [''] },
    '00280009': { vr: 'AT', Value: [0x00181063, '0018106a'] },
    '00189219': { vr: 'SV', Value: [BigInt(42), BigInt('9007199254740993')] },
    '00081115': { vr: 'SQ', Value: [{ '0020000E': { vr: 'UI', Value: ['1.2.3'] } }, {}] },
    '00280000': { vr: 'UL', Value: [4] },
    '7FE00010': { vr: 'OW', BulkDataURI: `${BASE}/bulk` } as DicomDataset[string],
    '00280010': { vr: 'US', Value: [512], _rawValue: [512] },
  }
  const back = (JSON.parse(toDicomJson([ds])) as Record<string, { vr: string; Value?: unknown[]; BulkDataURI?: string }>[])[0] ?? {}
  t.same(
    back['00100010']?.Value,
    [{ Alphabetic: 'Yamada^Tarou', Ideographic: '山田^太郎' }, { Alphabetic: 'Doe^Jane', Ideographic: 'ドウ' }, null],
    'PN objects of the non-empty groups',
  )
  t.same(back['00180050']?.Value, [1.5, -2000, null, 'n/a', '3.14159265358979323846'], 'DS numbers; text kept when no number or too precise (F.2.3)')
  t.same(back['00200013']?.Value, [7], 'IS number')
  t.same(back['00080008']?.Value, ['ORIGINAL', null, 'AXIAL'], 'an empty value in a list is null')
  t.same(back['00080050'], { vr: 'SH' }, 'all values empty: no Value')
  t.same(back['00280009']?.Value, ['00181063', '0018106A'], 'AT as GGGGEEEE text')
  t.same(back['00189219']?.Value, [42, '9007199254740993'], 'SV: a number, or text beyond 2^53')
  t.same(back['00081115']?.Value, [{ '0020000E': { vr: 'UI', Value: ['1.2.3'] } }, {}], 'sequence items as nested objects')
  t.notOk(back['00280000'], 'no group length')
  t.same(back['7FE00010'], { vr: 'OW', BulkDataURI: `${BASE}/bulk` }, 'a BulkDataURI kept')
  t.same(back['00280010'], { vr: 'US', Value: [512] }, 'no _rawValue')
  t.throws(() => toDicomJson([{ '00431028': { vr: 'OB', Value: [new ArrayBuffer(4)] } }]), TypeError, 'a binary value throws')
  t.throws(
    () => toDicomJson([{ '00081115': { vr: 'SQ', Value: [{ '00431028': { vr: 'OB', Value: [new Uint8Array(2) as unknown as ArrayBuffer] } }] } }]),
    TypeError,
    'in a sequence too',
  )
  t.equal(toDicomJson([]), '[]', 'no results: an empty array')
})

t.test('a real sample: CT_small.dcm split, indexed and found by Patient ID and Study Date', async (t) => {
  // The repository's pinned copy of /work/shared/samples/dicom/CT_small.dcm (same bytes, see test/vectors/dicom/README.md).
  const inst = parseDicom(new Uint8Array(readFileSync(sample('CT_small.dcm'))))
  const levels = splitLevels(inst.dataset)
  t.notOk(levels.instance['7FE00010'], 'no Pixel Data in the index')
  t.notOk(levels.instance['00431029'], 'no private binary over 1 KiB')
  t.ok(levels.instance['00431028'], 'a private binary under 1 KiB kept')
  const index = [...INDEX, levels]
  const r = runQido(query('study', 'PatientID=1CT1&StudyDate=20040119'), index, BASE)
  t.equal(r.total, 1, 'found by Patient ID and Study Date')
  const ds = r.results[0] as DicomDataset
  t.same(ds['0020000D']?.Value, ['1.3.6.1.4.1.5962.1.2.1.20040119072730.12322'], 'its Study Instance UID')
  t.same(ds['00100010']?.Value, [{ Alphabetic: 'CompressedSamples^CT1' }], 'its Patient Name')
  t.same(ds['00080061']?.Value, ['CT'], 'Modalities in Study')
  t.same([ds['00201206']?.Value, ds['00201208']?.Value], [[1], [1]], 'one series, one instance')
  t.same(ds['00080090'], { vr: 'PN' }, "its empty Referring Physician's Name")
  t.equal(runQido(query('study', 'PatientID=1CT1&StudyDate=20050101-'), index, BASE).total, 0, 'not found outside its date')
  t.same(
    runQido(query('study', 'fuzzymatching=true&PatientName=compressed'), index, BASE).results.map((x) => first(x, '00100020')),
    ['1CT1'],
    'fuzzy name',
  )
  const instances = runQido(query('instance', 'includefield=all&Modality=CT&Rows=128'), index, BASE)
  t.equal(instances.total, 1, 'an instance search by Modality and Rows')
  const json = JSON.parse(toDicomJson(instances.results)) as Record<string, { vr: string; Value?: unknown[] }>[]
  t.same(json[0]?.['00200032']?.Value, [-158.135803, -179.035797, -75.699997], 'DS values as numbers')
  t.notOk(json[0]?.['00431028'], 'binary elements are never returned, even with includefield=all')
})

t.test('wildcards of many stars match in linear steps, not by backtracking (a regular expression took seconds and held the node)', async (t) => {
  const long = { Alphabetic: 'A'.repeat(60) }
  const index = [splitLevels(dataset({ StudyInstanceUID: '1.2.3', SeriesInstanceUID: '1.2.3.1', SOPInstanceUID: '1.2.3.1.1', PatientName: long }))]
  const stars = '*'.repeat(40)
  t.equal(run('study', `PatientName=${stars}Z`, undefined, index).results.length, 0, `${stars}Z against 60 A: no match`)
  t.equal(run('study', `PatientName=${stars}A`, undefined, index).results.length, 1, `${stars}A: a match`)
  t.equal(run('study', `PatientName=${'*?'.repeat(60)}`, undefined, index).results.length, 1, '*? x 60: a match (at least 60 characters)')
  t.equal(run('study', `PatientName=${'*?'.repeat(61)}`, undefined, index).results.length, 0, '*? x 61: none (at least 61 characters)')
})
