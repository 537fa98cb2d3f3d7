import t from 'tap'
import { BASIC_PROFILE_TABLE, PRIVATE_ATTRIBUTES_ACTION, deidTableRow, type DeidActionCode } from '../../../src/study/index.js'

t.test('the table is the whole of PS3.15 Table E.1-1, one row per tag, sorted', async (t) => {
  t.ok(BASIC_PROFILE_TABLE.length >= 600, `${BASIC_PROFILE_TABLE.length} rows`)
  const tags = BASIC_PROFILE_TABLE.map((r) => r.tag)
  t.equal(new Set(tags).size, tags.length, 'no tag twice')
  t.ok(
    tags.every((tag) => /^[0-9A-Fx]{8}$/.test(tag)),
    'tags are GGGGEEEE',
  )
  const key = (tag: string): string => tag.replace(/x/g, '0')
  t.same(
    tags,
    [...tags].sort((a, b) => (key(a) < key(b) ? -1 : 1)),
    'sorted by tag',
  )
  t.ok(
    BASIC_PROFILE_TABLE.every((r) => r.name.length > 0),
    'every row named',
  )
  t.ok(
    tags.every((tag) => (parseInt(tag.slice(0, 4).replace(/x/g, '0'), 16) & 1) === 0),
    'no private tag listed',
  )
})

t.test('every action code of the Basic Profile column is used', async (t) => {
  const used = new Set(BASIC_PROFILE_TABLE.map((r) => r.action))
  const basic: DeidActionCode[] = ['D', 'Z', 'X', 'U', 'Z/D', 'X/Z', 'X/D', 'X/Z/D', 'X/Z/U*']
  t.same([...used].sort(), [...basic].sort())
  // K and C appear only in the option columns of the current edition.
  t.notOk(used.has('K'))
  t.notOk(used.has('C'))
  t.equal(PRIVATE_ATTRIBUTES_ACTION, 'X')
  const count = (a: DeidActionCode): number => BASIC_PROFILE_TABLE.filter((r) => r.action === a).length
  t.ok(count('X') > 300 && count('D') > 50 && count('U') > 40 && count('Z') > 30, 'plausible spread over the codes')
})

t.test('rows checked against the standard', async (t) => {
  // PS3.15 Table E.1-1, current edition. Patient ID is Z/D there, as in 2024b
  // and in fo-dicom's 2023 copy; older editions (e.g. 2021) had Z.
  const expected: [string, string, DeidActionCode][] = [
    ['00100010', "Patient's Name", 'Z'],
    ['00100020', 'Patient ID', 'Z/D'],
    ['00100030', "Patient's Birth Date", 'Z'],
    ['00100040', "Patient's Sex", 'Z'],
    ['00080050', 'Accession Number', 'Z'],
    ['00080080', 'Institution Name', 'X/Z/D'],
    ['0020000D', 'Study Instance UID', 'U'],
    ['0020000E', 'Series Instance UID', 'U'],
    ['00080018', 'SOP Instance UID', 'U'],
    ['00200052', 'Frame of Reference UID', 'U'],
    ['00081155', 'Referenced SOP Instance UID', 'U'],
    ['00101002', 'Other Patient IDs Sequence', 'X'],
    ['00080020', 'Study Date', 'Z'],
    ['00080021', 'Series Date', 'X/D'],
    ['00081140', 'Referenced Image Sequence', 'X/Z/U*'],
    ['00081010', 'Station Name', 'X/Z/D'],
    ['00080090', "Referring Physician's Name", 'Z'],
    ['00020003', 'Media Storage SOP Instance UID', 'U'],
    ['0040A730', 'Content Sequence', 'D'],
    ['FFFCFFFC', 'Data Set Trailing Padding', 'X'],
  ]
  for (const [tag, name, action] of expected) {
    const row = deidTableRow(tag)
    t.equal(row?.name, name, tag)
    t.equal(row?.action, action, `${name} ${action}`)
  }
  t.equal(deidTableRow('0020000d')?.name, 'Study Instance UID', 'lower-case tags')
  t.equal(deidTableRow('60023000')?.name, 'Overlay Data', 'overlay group 6002')
  t.equal(deidTableRow('601E4000')?.name, 'Overlay Comments')
  t.equal(deidTableRow('50100010')?.name, 'Curve Data', 'any element of a curve group')
  t.equal(deidTableRow('60020010'), undefined, 'overlay rows other than data and comments are not listed')
  t.equal(deidTableRow('00080016'), undefined, 'SOP Class UID is not in the table (kept)')
  t.equal(deidTableRow('7FE00010'), undefined, 'Pixel Data is not in the table (kept)')
})
