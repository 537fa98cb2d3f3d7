import t from 'tap'
import { cp, readdir, readFile, stat, truncate, writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { AddedStudyView, StudyView } from '../../src/api/index.js'
import { initDataDir } from '../../src/node/index.js'
import { TAG, firstString, isPrivateTag, pixelDigest, readDicom, toJsonDataset, type DicomDataset, type DicomInstance } from '../../src/study/index.js'
import { DaemonProcess, repoRoot } from '../../src/devnet/index.js'
import { dcmdumpErrors, ensureDcmdump } from '../helpers/dcmtk.js'
import { textValues } from '../unit/study/helpers.js'
import { assertOneLineError, exists, jsonOf, runCli, tempDir } from './helpers/cli.js'

const VECTORS = join(repoRoot(), 'test/vectors/dicom')
/** Each input is added on its own: MR_small and MR_small_implicit are one image in two encodings (same UIDs). */
const INPUTS = ['CT_small.dcm', 'MR_small.dcm', 'MR_small_implicit.dcm', 'study-77654033']
const CHUNK = 4096

async function filesUnder(p: string): Promise<string[]> {
  if (!(await stat(p)).isDirectory()) return [p]
  return (await readdir(p, { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort()
}

/** Patient name, ID and birth date, and the study, series and instance UIDs: searched for as bytes anywhere. */
const STRONG = [TAG.PatientName, TAG.PatientID, '00100030', TAG.StudyInstanceUID, TAG.SeriesInstanceUID, TAG.SOPInstanceUID]
/** Accession number, institution, referring physician: searched for as element values (they can be part of kept values, e.g. "TOSHIBA" of "TOSHIBA_MEC"). */
const WEAK = ['00080050', '00080080', '00080090']

function values(inst: DicomInstance, tags: readonly string[]): string[] {
  const out: string[] = []
  for (const tag of tags) {
    const el = inst.dataset[tag]
    if (el !== undefined) for (const v of textValues(el)) if (v.trim().length >= 4) out.push(v.trim())
  }
  return out
}

/** Tags of private elements (odd group), at any depth. */
function privateTags(ds: DicomDataset): string[] {
  const out: string[] = []
  for (const [tag, el] of Object.entries(ds)) {
    if (isPrivateTag(tag)) out.push(tag)
    if (el.vr === 'SQ') for (const item of el.Value ?? []) out.push(...privateTags(item as DicomDataset))
  }
  return out
}

/** Every text value of a dataset, at any depth. */
function allTextValues(ds: DicomDataset): string[] {
  const out: string[] = []
  for (const el of Object.values(ds)) {
    if (el.vr === 'SQ') for (const item of el.Value ?? []) out.push(...allTextValues(item as DicomDataset))
    else out.push(...textValues(el).map((v) => v.trim()))
  }
  return out
}

t.test('study add, then get (images and full scope), ls and show, for every sample; errors; integrity; no identifier on disk', async (t) => {
  await ensureDcmdump()
  const dir = await tempDir(t, 'radchain-roundtrip-')
  const node = join(dir, 'node')
  const daemon = new DaemonProcess(node)
  t.teardown(() => daemon.kill())
  // No periodic scrub: this test flips a byte and expects the read path to find it.
  await initDataDir({
    dir: node,
    dev: true,
    apiPort: 0,
    scrypt: { N: 1024, r: 8, p: 1 },
    params: { blockIntervalMs: 300, chunkSize: CHUNK },
    config: { swarm: { scrubIntervalMs: 0 } },
  })
  const client = await daemon.start()
  const env = { RADCHAIN_PASSPHRASE: 'patient passphrase' }
  const cli = (args: string[]): ReturnType<typeof runCli> => runCli([...args, '--node', node], { env, timeoutMs: 60_000 })

  // A patient who owns one of the studies.
  const kg = await runCli(['patient', 'keygen', '--out', join(dir, 'patient.key'), '--json'], { env })
  t.equal(kg.code, 0, kg.stderr)
  const patient = jsonOf<{ publicKeyFile: string; keyId: string; publicKey: string }>(t, kg)
  t.match(await readFile(patient.publicKeyFile, 'utf8'), /^rcpatient1:[A-Za-z0-9_-]+\n$/)
  t.equal((await stat(join(dir, 'patient.key'))).mode & 0o777, 0o600, 'the patient secret is readable by its owner only')
  assertOneLineError(t, await runCli(['patient', 'keygen', '--out', join(dir, 'patient.key')], { env }), /already exists/, 'keygen over an existing key')

  const secrets = new Set<string>()
  const weak = new Set<string>()
  const studies: { input: string; study: AddedStudyView; originals: DicomInstance[] }[] = []
  for (const input of INPUTS) {
    const originals = await Promise.all((await filesUnder(join(VECTORS, input))).map((f) => readDicom(f)))
    for (const o of originals) {
      for (const s of values(o, STRONG)) secrets.add(s)
      for (const s of values(o, WEAK)) weak.add(s)
    }
    const args = ['study', 'add', join(VECTORS, input), '--json', ...(input === 'CT_small.dcm' ? ['--patient', patient.publicKeyFile] : [])]
    const r = await cli(args)
    t.equal(r.code, 0, `${input}: ${r.stderr}`)
    const added = jsonOf<AddedStudyView[]>(t, r)
    const byStudy = new Map<string, DicomInstance[]>()
    for (const o of originals) {
      const uid = firstString(o.dataset, TAG.StudyInstanceUID) ?? ''
      byStudy.set(uid, [...(byStudy.get(uid) ?? []), o])
    }
    t.equal(added.length, byStudy.size, `${input}: one registration per study`)
    for (const a of added) {
      const group = [...byStudy.values()].find((g) => g.length === a.instances)
      t.ok(group, `${input}: a study of ${a.instances} instance(s)`)
      studies.push({ input, study: a, originals: group ?? [] })
    }
  }
  t.equal(studies.length, 5, 'five studies in the samples')
  t.ok(secrets.size > 10, `${secrets.size} identifying values to look for`)
  const ct = studies.find((s) => s.input === 'CT_small.dcm')
  t.match(ct?.study.owner, /^[0-9a-f]{64}$/, 'the owned study has an owner key')
  t.not(ct?.study.owner, patient.keyId, "the study's own key, not the patient's")

  // ls and show
  const ls = await cli(['study', 'ls', '--json'])
  t.equal(ls.code, 0, ls.stderr)
  const listed = jsonOf<StudyView[]>(t, ls)
  t.same(listed.map((s) => s.studyId).sort(), studies.map((s) => s.study.studyId).sort(), 'ls lists every registered study')
  t.ok(
    listed.every((s) => s.local.complete),
    'every study is complete on its custodian',
  )
  const show = jsonOf<StudyView>(t, await cli(['study', 'show', ct?.study.studyId ?? '', '--json']))
  t.equal(show.owner, ct?.study.owner)
  t.match(show.ownerEphemeral, /^[0-9a-f]{64}$/)
  t.equal(show.custodian, 'org1')
  t.same(show.local, {
    chunkList: true,
    chunksHeld: ct?.study.chunks,
    chunkCount: ct?.study.chunks,
    custodianEnvelope: true,
    ownerEnvelope: true,
    demographics: true,
    complete: true,
  })
  const showText = await cli(['study', 'show', ct?.study.studyId ?? ''])
  t.match(showText.stdout, /complete here\s+yes/)

  const digests = new Map<string, string>()
  for (const { input, study, originals } of studies) {
    const images = join(dir, 'out', study.studyId, 'images')
    const full = join(dir, 'out', study.studyId, 'full')
    const gi = await cli(['study', 'get', study.studyId, '--out', images, '--json'])
    t.equal(gi.code, 0, `${input}: ${gi.stderr}`)
    t.same(jsonOf(t, gi), { studyId: study.studyId, scope: 'images', out: images, files: originals.length, bytes: jsonOf<{ bytes: number }>(t, gi).bytes })
    const gf = await cli(['study', 'get', study.studyId, '--out', full, '--scope', 'full'])
    t.equal(gf.code, 0, `${input}: ${gf.stderr}`)
    t.match(gf.stdout, /yours to keep safe/, "the CLI says exported files are the user's")

    const imageFiles = await filesUnder(images)
    const fullFiles = await filesUnder(full)
    t.equal(imageFiles.length, originals.length, `${input}: every instance written (images)`)
    t.equal(fullFiles.length, originals.length, `${input}: every instance written (full)`)
    const want = originals.map((o) => pixelDigest(o).digest).sort()
    const gotImages = await Promise.all(imageFiles.map(async (f) => pixelDigest(await readDicom(f)).digest))
    t.same(gotImages.sort(), want, `${input}: pixel digests equal after the round trip (images)`)
    for (const f of imageFiles) {
      const bytes = await readFile(f)
      const found = [...secrets].filter((s) => bytes.includes(Buffer.from(s)))
      t.same(found, [], `${input}: ${f.slice(dir.length)} carries no identifier of any input`)
      t.same(await dcmdumpErrors(f), [], `dcmdump reads ${f.slice(dir.length)}`)
      const inst = await readDicom(f)
      t.equal(firstString(inst.dataset, TAG.PatientIdentityRemoved), 'YES')
      const kept = [...allTextValues(inst.dataset), ...allTextValues(inst.meta)]
      t.same(
        kept.filter((v) => secrets.has(v) || weak.has(v)),
        [],
        `${input}: no identifying element value left (nested sequences and file meta included)`,
      )
      t.same(privateTags(inst.dataset), [], `${input}: no private element left`)
    }
    // Full scope: every attribute and the file meta as in the input.
    const bySop = new Map(originals.map((o) => [firstString(o.dataset, TAG.SOPInstanceUID), o]))
    for (const f of fullFiles) {
      t.equal((await stat(f)).mode & 0o777, 0o600, 'full-scope files are readable by their owner only')
      t.same(await dcmdumpErrors(f), [], `dcmdump reads ${f.slice(dir.length)}`)
      const inst = await readDicom(f)
      const orig = bySop.get(firstString(inst.dataset, TAG.SOPInstanceUID))
      t.ok(orig, `${input}: the original SOP Instance UID is back`)
      if (orig === undefined) continue
      t.same(toJsonDataset(inst.dataset), toJsonDataset(orig.dataset), `${input}: every attribute restored`)
      t.same(toJsonDataset(inst.meta), toJsonDataset(orig.meta), `${input}: file meta restored`)
    }
    if (input.startsWith('MR_small')) digests.set(input, gotImages[0] ?? '')
  }
  t.equal(digests.size, 2)
  t.equal(digests.get('MR_small.dcm'), digests.get('MR_small_implicit.dcm'), 'MR_small and MR_small_implicit have one pixel digest')

  // Bad input: clear errors, nothing registered, nothing written.
  const target = studies[0]?.study.studyId ?? ''
  const h0 = (await client.status()).height
  const countRegistrations = async (): Promise<number> => (await client.studies()).length
  const before = await countRegistrations()
  const empty = join(dir, 'empty')
  await mkdir(empty)
  const truncated = join(dir, 'truncated.dcm')
  await cp(join(VECTORS, 'CT_small.dcm'), truncated)
  await truncate(truncated, 3000)
  const notDicom = join(dir, 'notes.txt')
  await writeFile(notDicom, 'not DICOM')
  const used = join(dir, 'used')
  await mkdir(used)
  await writeFile(join(used, 'keep.txt'), 'mine')
  const cases: [string, string[], RegExp, string][] = [
    ['empty folder', ['study', 'add', empty, '--json'], /no DICOM study/, 'STUDY_NO_INPUT'],
    ['truncated file', ['study', 'add', truncated, '--json'], /truncated\.dcm/, 'STUDY_BAD_INPUT'],
    ['non-DICOM file', ['study', 'add', notDicom, '--json'], /notes\.txt/, 'STUDY_BAD_INPUT'],
    ['bad patient key', ['study', 'add', join(VECTORS, 'CT_small.dcm'), '--patient', 'rcpatient1:AAAA', '--json'], /patient public key/, 'PATIENT_BAD_KEY'],
    [
      'missing patient key file',
      ['study', 'add', join(VECTORS, 'CT_small.dcm'), '--patient', join(dir, 'nope.pub'), '--json'],
      /nor a readable file/,
      'PATIENT_BAD_KEY',
    ],
    ['unknown study', ['study', 'get', 'ab'.repeat(16), '--out', join(dir, 'x1'), '--json'], /no study abab/, 'STUDY_UNKNOWN'],
    ['malformed study id', ['study', 'get', 'not-an-id', '--out', join(dir, 'x2'), '--json'], /32 hex digits/, 'STUDY_BAD_ID'],
    ['bad scope', ['study', 'get', target, '--out', join(dir, 'x3'), '--scope', 'everything', '--json'], /images or full/, 'STUDY_BAD_SCOPE'],
    ['output folder not empty', ['study', 'get', target, '--out', used, '--json'], /not empty/, 'STUDY_OUT_NOT_EMPTY'],
    ['show unknown study', ['study', 'show', 'cd'.repeat(16), '--json'], /no study cdcd/, 'STUDY_UNKNOWN'],
  ]
  for (const [what, args, msg, code] of cases) {
    const r = await cli(args)
    assertOneLineError(t, r, msg, what, code)
    t.equal(jsonOf<{ error: { code: string } }>(t, r).error.code, code, `${what}: ${code}`)
  }
  t.same(await readdir(used), ['keep.txt'], 'nothing written into a folder that was not empty')
  for (const x of ['x1', 'x2', 'x3']) t.notOk(await exists(join(dir, x)), `no output folder left by a refused get (${x})`)
  t.equal(await countRegistrations(), before, 'nothing registered by refused adds')
  t.ok((await client.status()).height >= h0)

  // Integrity: one flipped byte in a stored chunk of a fresh study.
  const chunksDir = join(node, 'chunks')
  const beforeAdd = new Set(await filesUnder(chunksDir))
  const r = await cli(['study', 'add', join(VECTORS, 'study-77654033/CT2'), '--json'])
  t.equal(r.code, 0, r.stderr)
  const victim = jsonOf<AddedStudyView[]>(t, r)[0] as AddedStudyView
  t.ok(victim.chunks >= 2, `several chunks (${victim.chunks})`)
  const newFiles = (await filesUnder(chunksDir)).filter((f) => !beforeAdd.has(f))
  const sizes = await Promise.all(newFiles.map(async (f) => ({ f, size: (await stat(f)).size })))
  const chunkFile = sizes.find((s) => s.size === CHUNK + 16)?.f ?? ''
  t.ok(chunkFile !== '', 'a full chunk file of the study found')
  const bytes = await readFile(chunkFile)
  bytes[100] = (bytes[100] ?? 0) ^ 0x01
  await writeFile(chunkFile, bytes)
  const out = join(dir, 'corrupt-out')
  const bad = await cli(['study', 'get', victim.studyId, '--out', out, '--json'])
  const chunkHex = chunkFile.split('/').at(-1) ?? ''
  assertOneLineError(t, bad, new RegExp(`chunk \\d+ \\(${chunkHex}\\) of study ${victim.studyId} failed its integrity check`), 'corrupt chunk')
  t.equal(jsonOf<{ error: { code: string } }>(t, bad).error.code, 'STUDY_INTEGRITY')
  t.notOk(await exists(out), 'no partial output is left')
  const after = jsonOf<StudyView>(t, await cli(['study', 'show', victim.studyId, '--json']))
  t.equal(after.local.chunksHeld, victim.chunks - 1, 'the corrupt chunk is dropped from the store (to be fetched again)')
  t.equal(after.local.complete, false)
  const again = await cli(['study', 'get', victim.studyId, '--out', out, '--json'])
  assertOneLineError(
    t,
    again,
    /1 chunk\(s\) of study \w+ are not on this node and no other organization is reachable/,
    'missing chunk, nobody to fetch it from',
  )
  t.equal(jsonOf<{ error: { code: string } }>(t, again).error.code, 'SWARM_UNAVAILABLE')

  // Nothing the node wrote holds an identifier from the inputs.
  t.equal(await daemon.stop(), 0)
  const written = [...(await filesUnder(join(node, 'chunks'))), ...(await filesUnder(join(node, 'db'))), join(node, 'daemon.log')]
  t.ok(written.length > 20, `${written.length} files checked`)
  const leaks: string[] = []
  for (const f of written) {
    const b = await readFile(f)
    for (const s of secrets) if (b.includes(Buffer.from(s))) leaks.push(`${s} in ${f.slice(dir.length)}`)
  }
  t.same(leaks, [], 'no identifying value of any input in the ledger, chunk store or log')
})
