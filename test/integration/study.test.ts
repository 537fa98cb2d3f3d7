import t from 'tap'
import { cp, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { initDataDir } from '../../src/node/index.js'
import { MEDIA_STORAGE_DIRECTORY_SOP_CLASS, TAG, TRANSFER_SYNTAX, cloneInstance, readDicom, writeDicom } from '../../src/study/index.js'
import type { ApiClient } from '../../src/api/index.js'
import { DaemonProcess, repoRoot } from '../../src/devnet/index.js'
import { bareDataset, reencoded } from '../unit/study/helpers.js'
import { runCli } from './helpers/cli.js'

async function allFiles(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name))
}

/** Registrations of studies on the ledger so far. */
async function registeredStudies(client: ApiClient): Promise<number> {
  const h0 = (await client.status()).height
  let registered = 0
  for (let h = 1; h <= h0; h++) for (const tx of (await client.block(String(h))).txs as { type: string }[]) if (tx.type === 'study.register') registered++
  return registered
}

t.test('study add: de-identified, encrypted, registered; bad input refused unless skipped', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-study-'))
  const daemon = new DaemonProcess(join(dir, 'node'))
  t.teardown(async () => {
    await daemon.kill()
    await rm(dir, { recursive: true, force: true })
  })
  await initDataDir({ dir: join(dir, 'node'), dev: true, apiPort: 0, scrypt: { N: 1024, r: 8, p: 1 }, params: { blockIntervalMs: 500, chunkSize: 4096 } })
  const client = await daemon.start()
  const input = join(dir, 'input')
  await cp(join(repoRoot(), 'test/vectors/dicom/study-77654033'), input, { recursive: true })
  await writeFile(join(input, 'notes.txt'), 'not a DICOM file')
  // An index file of a DICOM export: left out whatever --skip-bad says, and said so.
  const dicomdir = {
    meta: {
      [TAG.MediaStorageSOPClassUID]: { vr: 'UI', Value: [MEDIA_STORAGE_DIRECTORY_SOP_CLASS] },
      [TAG.MediaStorageSOPInstanceUID]: { vr: 'UI', Value: ['1.2.3.4'] },
    },
    dataset: { '00041130': { vr: 'CS', Value: ['RADCHAIN'] } },
  }
  await writeFile(join(input, 'DICOMDIR'), writeDicom(dicomdir))

  const refused = await runCli(['study', 'add', input, '--node', join(dir, 'node'), '--json'])
  t.equal(refused.code, 1, 'a bad file refuses the whole add')
  t.equal(JSON.parse(refused.stdout).error.code, 'STUDY_BAD_INPUT')
  t.match(refused.stderr, /notes\.txt/, 'the message names the file')
  t.equal(await registeredStudies(client), 0, 'nothing was registered')

  const ok = await runCli(['study', 'add', input, '--skip-bad', '--node', join(dir, 'node'), '--json'])
  t.equal(ok.code, 0, ok.stderr)
  const studies = JSON.parse(ok.stdout) as { studyId: string; tx: string; height: number; instances: number; chunks: number }[]
  t.same(studies.map((s) => s.instances).sort(), [3, 4], 'two studies: 3 CR and 4 CT instances')
  t.match(ok.stderr, /skipped .*notes\.txt/, 'the skipped file is listed')
  t.match(ok.stderr, new RegExp(`ignored ${join(input, 'DICOMDIR').replace(/[.]/g, '\\.')}: DICOMDIR`), 'the DICOMDIR is listed as ignored')
  for (const s of studies) {
    const st = await client.tx(s.tx)
    t.equal(st.status, 'final')
    const payload = (st.tx as { payload: { studyId: string; chunkCount: number; custodian: string } }).payload
    t.equal(payload.studyId, s.studyId)
    t.equal(payload.custodian, 'org1')
    t.ok(payload.chunkCount >= 2, `several chunks at 4 KiB (${payload.chunkCount})`)
  }
  // Confidentiality: no patient identifier from the input in the chunks, the ledger store or the log.
  const secrets = ['Doe^Archibald', 'Archibald', '77654033']
  const files = [...(await allFiles(join(dir, 'node', 'chunks'))), ...(await allFiles(join(dir, 'node', 'db'))), join(dir, 'node', 'daemon.log')]
  t.ok(files.length > 10, `${files.length} files checked`)
  const leaks: string[] = []
  for (const f of files) {
    const bytes = await readFile(f)
    for (const s of secrets) if (bytes.includes(Buffer.from(s))) leaks.push(`${s} in ${f}`)
  }
  t.same(leaks, [], 'no patient identifier on disk in the clear')
  t.equal(await daemon.stop(), 0)
})

t.test('study add: one instance in two files refuses the add naming both, unless --skip-bad; a file without Part 10 header is read', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-study-dup-'))
  const daemon = new DaemonProcess(join(dir, 'node'))
  t.teardown(async () => {
    await daemon.kill()
    await rm(dir, { recursive: true, force: true })
  })
  await initDataDir({ dir: join(dir, 'node'), dev: true, apiPort: 0, scrypt: { N: 1024, r: 8, p: 1 }, params: { blockIntervalMs: 500, chunkSize: 4096 } })
  const client = await daemon.start()
  const vectors = join(repoRoot(), 'test/vectors/dicom/study-77654033')
  const orig = await readDicom(join(vectors, 'CT2', '17106'))
  const otherPixels = cloneInstance(orig)
  const px = new Uint8Array(orig.dataset[TAG.PixelData]?.Value?.[0] as ArrayBuffer).slice()
  px[0] = (px[0] as number) ^ 0xff
  otherPixels.dataset[TAG.PixelData] = { vr: 'OW', Value: [px.buffer] }
  // The CT study as stored, then its first image again: re-encoded (same pixels), or with other pixels.
  const input = async (name: string, copy: { dir: string; bytes: Uint8Array } | undefined): Promise<{ root: string; original: string; copy: string }> => {
    const root = join(dir, name)
    await cp(join(vectors, 'CT2'), join(root, 'a'), { recursive: true })
    if (copy !== undefined) {
      await mkdir(join(root, copy.dir))
      await writeFile(join(root, copy.dir, '17106'), copy.bytes)
    }
    return { root, original: join(root, 'a', '17106'), copy: join(root, copy?.dir ?? 'a', '17106') }
  }
  const same = await input('same', { dir: 'b', bytes: writeDicom(reencoded(orig, TRANSFER_SYNTAX.ImplicitVRLittleEndian)) })
  const other = await input('other', { dir: 'c', bytes: writeDicom(otherPixels) })

  for (const x of [same, other]) {
    const refused = await runCli(['study', 'add', x.root, '--node', join(dir, 'node'), '--json'])
    t.equal(refused.code, 1, `${x.root}: the add is refused`)
    t.equal(JSON.parse(refused.stdout).error.code, 'STUDY_BAD_INPUT')
    t.ok(refused.stderr.includes(x.copy) && refused.stderr.includes(x.original), `${x.root}: the message names both files`)
  }
  t.equal(await registeredStudies(client), 0, 'nothing was registered')
  t.same(await allFiles(join(dir, 'node', 'chunks')), [], 'nothing was stored')

  // Both copies, and the CR study as bare datasets (no preamble, no file meta), as a DIMSE storage SCP writes them.
  const all = await input('all', { dir: 'b', bytes: writeDicom(reencoded(orig, TRANSFER_SYNTAX.ImplicitVRLittleEndian)) })
  await mkdir(join(all.root, 'c'))
  await writeFile(join(all.root, 'c', '17106'), writeDicom(otherPixels))
  await mkdir(join(all.root, 'scp'))
  for (const f of ['CR1/6154', 'CR2/6247', 'CR3/6278']) {
    await writeFile(join(all.root, 'scp', f.replace('/', '-')), bareDataset(await readDicom(join(vectors, f))))
  }
  const ok = await runCli(['study', 'add', all.root, '--skip-bad', '--node', join(dir, 'node'), '--json'])
  t.equal(ok.code, 0, ok.stderr)
  const studies = JSON.parse(ok.stdout) as { instances: number }[]
  t.same(studies.map((s) => s.instances).sort(), [3, 4], 'the CT study with its first image once, and the CR study read from bare datasets')
  t.match(
    ok.stderr,
    new RegExp(
      `skipped ${join(all.root, 'b', '17106').replace(/[.]/g, '\\.')}: .*${join(all.root, 'a', '17106').replace(/[.]/g, '\\.')}.* \\[DICOM_DUPLICATE_INSTANCE\\]`,
    ),
    'the re-encoded copy is listed as a skipped duplicate, naming the earlier file',
  )
  t.match(
    ok.stderr,
    new RegExp(`skipped ${join(all.root, 'c', '17106').replace(/[.]/g, '\\.')}: .* \\[DICOM_DUPLICATE_UID\\]`),
    'the copy with other pixels is listed as skipped',
  )
  t.equal(await registeredStudies(client), 2)
  t.equal(await daemon.stop(), 0)
})

t.test('study add that fails midway (chunk store full) takes back every chunk it stored and registers nothing', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-study-quota-'))
  const daemon = new DaemonProcess(join(dir, 'node'))
  t.teardown(async () => {
    await daemon.kill()
    await rm(dir, { recursive: true, force: true })
  })
  // Room for one 4 KiB chunk (4,112 bytes with its tag), not two: the 4-instance CT study needs three.
  await initDataDir({
    dir: join(dir, 'node'),
    dev: true,
    apiPort: 0,
    scrypt: { N: 1024, r: 8, p: 1 },
    params: { blockIntervalMs: 300, chunkSize: 4096 },
    config: { chunks: { quotaBytes: 6000 } },
  })
  const client = await daemon.start()
  const r = await runCli(['study', 'add', join(repoRoot(), 'test/vectors/dicom/study-77654033/CT2'), '--node', join(dir, 'node'), '--json'])
  t.equal(r.code, 1)
  t.equal(JSON.parse(r.stdout).error.code, 'CHUNK_QUOTA_EXCEEDED')
  t.match(r.stderr, /quota of 6000 bytes/, 'the message says the store is full')
  t.same(await allFiles(join(dir, 'node', 'chunks')), [], 'no chunk, envelope or demographics object is left behind')
  t.same(await client.studies(), [], 'nothing registered')
  t.equal(await daemon.stop(), 0)
})
