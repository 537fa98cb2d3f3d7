// A lease over DICOMweb (README "Connecting a PACS and a viewer", docs/ARCHITECTURE.md "DICOMweb"):
// the lessee's DICOMweb listener shows a study leased to it with the images
// scope (de-identified UIDs and attributes, pixels identical), from its own
// copy while the custodian is down; each read is recorded on the ledger; once
// the lease has ended QIDO-RS no longer lists it and WADO-RS refuses with
// radchain's code.
import t from 'tap'
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { DaemonInfo } from '../../src/api/index.js'
import { clientOf, repoRoot, startOrg, stopOrg } from '../../src/devnet/index.js'
import { DATADIR_FILES } from '../../src/node/index.js'
import { TAG, firstString, parseDicom, pixelDigest, readDicom } from '../../src/study/index.js'
import { jsonOf, runCli } from '../integration/helpers/cli.js'
import { newDevnet, org, waitFor } from './helpers.js'
import { splitMultipart } from '../helpers/multipart.js'

/**
 * Long enough for the grant, the lessee's indexing, the reads with the custodian down, and a full-scope lease
 * granted, shown and revoked beside it, on a slow machine (about 35 s idle).
 */
const LEASE_SECONDS = 75

t.test('an images lease over DICOMweb: shown de-identified, served with the custodian down, recorded, refused after its end', async (t) => {
  const { m } = await newDevnet(t, 'dicomweb-lease', {
    orgs: 4,
    basePort: 9500,
    chunkSize: 64 * 1024,
    blockIntervalMs: 500,
    config: { swarm: { reconcileMs: 300, durableTimeoutMs: 30_000 } },
  })
  const o1 = org(m, 'org1')
  const work = await mkdtemp(join(tmpdir(), 'radchain-dicomweb-lease-'))
  t.teardown(() => rm(work, { recursive: true, force: true }))
  const cli = (o: { dir: string }, args: string[]): ReturnType<typeof runCli> => runCli([...args, '--node', o.dir], { timeoutMs: 90_000 })

  const input = join(work, 'input')
  await cp(join(repoRoot(), 'test/vectors/dicom/study-77654033/CT2'), input, { recursive: true })
  const originals = await Promise.all((await readdir(input)).map((f) => readDicom(join(input, f))))
  const originalStudyUid = firstString(originals[0]?.dataset ?? {}, TAG.StudyInstanceUID) ?? ''
  const add = await cli(o1, ['study', 'add', input, '--json'])
  t.equal(add.code, 0, add.stderr)
  const added = jsonOf<{ studyId: string; holders: string[] }[]>(t, add)[0]
  const sid = added?.studyId ?? ''
  // The lessee holds nothing of the study by duty: everything it shows comes under its lease.
  const lessee = m.orgs.find((o) => !(added?.holders ?? []).includes(o.id)) as typeof o1
  t.ok(lessee !== undefined && lessee.id !== 'org1', `the lessee is ${lessee.id}`)

  const base = (JSON.parse(await readFile(join(lessee.dir, DATADIR_FILES.daemon), 'utf8')) as DaemonInfo).dicomweb as string
  const tok = await cli(lessee, ['dicomweb', 'token', 'create', '--name', 'viewer', '--scope', 'read', '--json'])
  t.equal(tok.code, 0, tok.stderr)
  const auth = { authorization: `Bearer ${(JSON.parse(tok.stdout) as { token: string }).token}` }
  const qidoStudies = async (): Promise<Record<string, { Value?: unknown[] }>[]> => {
    const r = await fetch(`${base}/studies`, { headers: { ...auth, accept: 'application/dicom+json' } })
    t.equal(r.status, 200, 'QIDO-RS answers')
    return (await r.json()) as Record<string, { Value?: unknown[] }>[]
  }
  const accessRecords = async (leaseId: string): Promise<string[]> =>
    (await (await clientOf(lessee)).audit(sid)).filter((e) => e.type === 'access.record' && e.leaseId === leaseId).map((e) => String(e.detail['what']))

  t.same(await qidoStudies(), [], 'before any lease the lessee shows nothing')

  const req = await cli(lessee, ['lease', 'request', sid, '--scope', 'images', '--duration', `${LEASE_SECONDS}s`, '--purpose', 'second opinion', '--json'])
  t.equal(req.code, 0, req.stderr)
  const leaseId = jsonOf<{ leaseId: string }>(t, req).leaseId
  await waitFor('org1 sees the request', 30_000, async () => (await (await clientOf(o1)).leases('incoming')).some((l) => l.leaseId === leaseId), 250)
  const grant = await cli(o1, ['lease', 'grant', leaseId, '--json'])
  t.equal(grant.code, 0, grant.stderr)

  // Granted: the lessee fetches the study under its lease and indexes it as the images scope shows it.
  let listed: Record<string, { Value?: unknown[] }>[] = []
  await waitFor(
    'the leased study listed by QIDO-RS at the lessee',
    60_000,
    async () => {
      listed = await qidoStudies()
      return listed.length === 1
    },
    500,
  )
  const shownUid = String(listed[0]?.['0020000D']?.Value?.[0] ?? '')
  t.match(shownUid, /^[0-9.]+$/)
  t.not(shownUid, originalStudyUid, 'the images scope shows the de-identified Study Instance UID')
  t.notOk(JSON.stringify(listed).includes('Doe^Archibald'), 'no patient name in the QIDO answer')
  t.equal(listed[0]?.['00201208']?.Value?.[0], originals.length, 'every instance indexed')
  await waitFor('the key unwrap recorded on the ledger', 30_000, async () => (await accessRecords(leaseId)).includes('unwrap'), 500)
  t.pass('opening the lease key to index the study is on the ledger')
  // Let the other holders take the lease envelope before the custodian goes away.
  await waitFor(
    'holders hold the lease envelope',
    30_000,
    async () => {
      const s = await (await clientOf(lessee)).study(sid)
      return (s.replication?.holders ?? []).filter((h) => h !== 'org1').length >= 2
    },
    250,
  )

  // The custodian goes down; the lessee still serves the study, from its copy.
  await stopOrg(o1)
  const wado = await fetch(`${base}/studies/${shownUid}`, { headers: { ...auth, accept: 'multipart/related; type="application/dicom"' } })
  t.equal(wado.status, 200, 'WADO-RS of the leased study with the custodian down')
  const parts = splitMultipart(Buffer.from(await wado.arrayBuffer()), wado.headers.get('content-type') ?? '')
  t.equal(parts.length, originals.length, 'every instance retrieved')
  const got = parts.map((p) => parseDicom(p))
  t.same(got.map((i) => pixelDigest(i).digest).sort(), originals.map((o) => pixelDigest(o).digest).sort(), 'pixel-identical to what org1 added')
  for (const [i, p] of parts.entries()) {
    t.notOk(p.includes(Buffer.from('Doe^Archibald')) || p.includes(Buffer.from('77654033')), `instance ${i}: no demographics`)
    t.equal(firstString(got[i]?.dataset ?? {}, TAG.StudyInstanceUID), shownUid, `instance ${i}: the UID the lessee sees`)
    t.equal(firstString(got[i]?.dataset ?? {}, TAG.PatientIdentityRemoved), 'YES')
  }
  const meta = await fetch(`${base}/studies/${shownUid}/metadata`, { headers: { ...auth, accept: 'application/dicom+json' } })
  t.equal(meta.status, 200, 'metadata of the leased study')
  t.equal(((await meta.json()) as unknown[]).length, originals.length)
  const byOriginalUid = await fetch(`${base}/studies/${originalStudyUid}`, { headers: { ...auth, accept: 'multipart/related; type="application/dicom"' } })
  t.equal(byOriginalUid.status, 404, 'the original Study Instance UID names nothing the images scope shows')
  await byOriginalUid.arrayBuffer()

  // The reads are on the ledger (one record for the reads within a minute: a viewer asks for every frame).
  await waitFor('the retrieval recorded on the ledger', 30_000, async () => (await accessRecords(leaseId)).includes('retrieve'), 500)
  t.same((await accessRecords(leaseId)).sort(), ['retrieve', 'unwrap'], 'one unwrap, one retrieval record for the reads of this minute')
  const audit = await cli(lessee, ['audit', sid, '--json'])
  t.equal(audit.code, 0, audit.stderr)
  t.ok(
    jsonOf<{ type: string; detail: { what?: string } }[]>(t, audit).some((e) => e.type === 'access.record' && e.detail.what === 'retrieve'),
    '`radchain audit` shows the retrieval',
  )

  // While the images lease runs: a full-scope lease of the same study shows it with its identity restored, under its
  // original UIDs, beside the de-identified one; revoked, it is gone at once, and the images lease is untouched.
  await startOrg(o1)
  const byUid = (studies: Record<string, { Value?: unknown[] }>[], uid: string): Record<string, { Value?: unknown[] }> | undefined =>
    studies.find((x) => x['0020000D']?.Value?.[0] === uid)
  const freq = await cli(lessee, ['lease', 'request', sid, '--scope', 'full', '--duration', '1h', '--purpose', 'surgery planning', '--json'])
  t.equal(freq.code, 0, freq.stderr)
  const fullId = jsonOf<{ leaseId: string }>(t, freq).leaseId
  await waitFor('org1 sees the full-scope request', 30_000, async () => (await (await clientOf(o1)).leases('incoming')).some((l) => l.leaseId === fullId), 250)
  const fgrant = await cli(o1, ['lease', 'grant', fullId, '--json'])
  t.equal(fgrant.code, 0, fgrant.stderr)
  let full: Record<string, { Value?: unknown[] }> | undefined
  await waitFor(
    'the full-scope study listed',
    60_000,
    async () => {
      full = byUid(await qidoStudies(), originalStudyUid)
      return full !== undefined
    },
    500,
  )
  t.ok(JSON.stringify(full?.['00100010']).includes('Doe^Archibald'), 'the full scope shows the original Study Instance UID and the patient name')
  const sop = firstString(originals[0]?.dataset ?? {}, TAG.SOPInstanceUID) ?? ''
  const series = firstString(originals[0]?.dataset ?? {}, TAG.SeriesInstanceUID) ?? ''
  const one = await fetch(`${base}/studies/${originalStudyUid}/series/${series}/instances/${sop}`, {
    headers: { ...auth, accept: 'multipart/related; type="application/dicom"' },
  })
  t.equal(one.status, 200, 'an instance by its original UIDs')
  const [restored] = splitMultipart(Buffer.from(await one.arrayBuffer()), one.headers.get('content-type') ?? '').map((p) => parseDicom(p))
  t.equal(firstString(restored?.dataset ?? {}, TAG.SOPInstanceUID), sop)
  t.equal(firstString(restored?.dataset ?? {}, TAG.PatientName), firstString(originals[0]?.dataset ?? {}, TAG.PatientName), 'identity restored')
  t.equal(restored === undefined ? '' : pixelDigest(restored).digest, pixelDigest(originals[0] as (typeof originals)[number]).digest, 'same pixels')
  const revoke = await cli(o1, ['lease', 'revoke', fullId, '--json'])
  t.equal(revoke.code, 0, revoke.stderr)
  await waitFor('the revoked study unlisted', 30_000, async () => byUid(await qidoStudies(), originalStudyUid) === undefined, 500)
  const revoked = await fetch(`${base}/studies/${originalStudyUid}/metadata`, { headers: { ...auth, accept: 'application/dicom+json' } })
  t.equal(revoked.status, 403, 'a read after the revocation is refused')
  const rbody = (await revoked.json()) as { error?: { code?: string; message?: string } }
  t.equal(rbody.error?.code, 'DICOMWEB_LEASE_ENDED')
  t.match(rbody.error?.message ?? '', /was revoked/)

  // The images lease ends (in chain time): QIDO-RS no longer lists the study, WADO-RS refuses with radchain's code.
  await waitFor('the lease ended', (LEASE_SECONDS + 60) * 1000, async () => (await qidoStudies()).length === 0, 1000)
  t.pass('QIDO-RS no longer lists the study once the lease has ended')
  const late = await fetch(`${base}/studies/${shownUid}`, { headers: { ...auth, accept: 'multipart/related; type="application/dicom"' } })
  t.equal(late.status, 403, 'WADO-RS after the end is refused')
  const body = (await late.json()) as { error?: { code?: string; message?: string } }
  t.equal(body.error?.code, 'DICOMWEB_LEASE_ENDED', JSON.stringify(body))
  t.match(body.error?.message ?? '', /has ended/)
  const lateMeta = await fetch(`${base}/studies/${shownUid}/series/${firstString(got[0]?.dataset ?? {}, TAG.SeriesInstanceUID)}/metadata`, {
    headers: { ...auth, accept: 'application/dicom+json' },
  })
  t.equal(lateMeta.status, 403, 'metadata after the end is refused too')
  await lateMeta.arrayBuffer()
  t.same((await accessRecords(leaseId)).sort(), ['retrieve', 'unwrap'], 'a refused read is not served, and not recorded as a retrieval')

  // The lessee's log names the lease and the study id (random numbers), never a UID or a patient attribute.
  const log = await readFile(join(lessee.dir, 'daemon.log'), 'utf8')
  t.notOk(log.includes(shownUid) || log.includes(originalStudyUid) || log.includes('Doe^Archibald'), 'no Study Instance UID or name in the lessee log')
  t.ok(log.includes('a leased study is indexed') && log.includes('a lease ended; what it showed left the index'))
})
