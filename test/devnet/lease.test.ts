import t from 'tap'
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { LeaseView } from '../../src/api/index.js'
import { clientOf, cliPath, repoRoot, startOrg, stopOrg } from '../../src/devnet/index.js'
import { spawn } from 'node:child_process'
import { TAG, firstString, pixelDigest, readDicom } from '../../src/study/index.js'
import { assertOneLineError, cleanEnv, jsonOf, runCli } from '../integration/helpers/cli.js'
import { newDevnet, org, waitFor } from './helpers.js'

t.test("a lease under the patient's consent: granted by the custodian's node, used while the custodian is offline, revoked by the patient", async (t) => {
  const { m } = await newDevnet(t, 'lease', {
    orgs: 4,
    basePort: 8700,
    chunkSize: 64 * 1024,
    blockIntervalMs: 500,
    config: {
      // The access records counted here are those of `study get`; DICOMweb's own fetch of a leased study is tested in dicomweb-lease.test.ts.
      dicomweb: { showLeased: false },
      swarm: { reconcileMs: 300, durableTimeoutMs: 30_000 },
    },
  })
  const [o1, o3] = [org(m, 'org1'), org(m, 'org3')]
  const work = await mkdtemp(join(tmpdir(), 'radchain-lease-'))
  t.teardown(() => rm(work, { recursive: true, force: true }))
  const env = { RADCHAIN_PASSPHRASE: 'patient pass' }
  const cli = (o: { dir: string }, args: string[]): ReturnType<typeof runCli> => runCli([...args, '--node', o.dir], { env, timeoutMs: 90_000 })

  const kg = await runCli(['patient', 'keygen', '--out', join(work, 'patient.key'), '--json'], { env })
  t.equal(kg.code, 0, kg.stderr)
  const input = join(work, 'input')
  await cp(join(repoRoot(), 'test/vectors/dicom/study-77654033/CT2'), input, { recursive: true })
  const originals = await Promise.all((await readdir(input)).map((f) => readDicom(join(input, f))))
  const add = await cli(o1, ['study', 'add', input, '--patient', join(work, 'patient.key.pub'), '--json'])
  t.equal(add.code, 0, add.stderr)
  const added = jsonOf<{ studyId: string; holders: string[] }[]>(t, add)[0]
  const sid = added?.studyId ?? ''
  // The lessee is the organization that does not hold the study: everything it gets comes under its lease.
  const o2 = m.orgs.find((o) => !(added?.holders ?? []).includes(o.id)) as typeof o1
  t.ok(o2 !== undefined && o2.id !== 'org1', `the lessee is ${o2.id}`)

  // The patient watches their studies through the lessee's node.
  const watch = spawn(process.execPath, [cliPath(), 'watch', '--node', o2.dir, '--key', join(work, 'patient.key'), '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // The secret finds the patient's studies: each has its own owner key on the ledger.
    env: cleanEnv(env),
  })
  let watched = ''
  watch.stdout.setEncoding('utf8').on('data', (d: string) => {
    watched += d
  })
  t.teardown(() => {
    watch.kill('SIGKILL')
  })
  let watchErr = ''
  watch.stderr.setEncoding('utf8').on('data', (d: string) => {
    watchErr += d
  })
  // The watch says "watching for ..." once the node streams events to it.
  await waitFor('watch subscribed', 20_000, () => watchErr.includes('watching for'))

  // org2 asks; the patient has no consent policy yet: the request waits.
  const req = await cli(o2, ['lease', 'request', sid, '--scope', 'images', '--duration', '2h', '--purpose', 'second opinion', '--json'])
  t.equal(req.code, 0, req.stderr)
  const leaseId = jsonOf<{ leaseId: string }>(t, req).leaseId
  t.match(leaseId, /^[0-9a-f]{64}$/)
  const outgoing = jsonOf<LeaseView[]>(t, await cli(o2, ['lease', 'ls', '--outgoing', '--json']))
  t.same(
    outgoing.map((l) => [l.leaseId, l.status, l.scope]),
    [[leaseId, 'requested', 'images']],
  )
  const early = await cli(o2, ['study', 'get', sid, '--out', join(work, 'early'), '--json'])
  assertOneLineError(t, early, /has no lease on it/, 'no lease yet')
  t.equal(jsonOf<{ error: { code: string } }>(t, early).error.code, 'STUDY_NO_ACCESS')

  // The patient consents to images for any organization: org1's node grants on its own.
  const consent = await cli(o2, ['patient', 'consent', '--key', join(work, 'patient.key'), '--any-org', '--scope', 'images', '--max-duration', '30d', '--json'])
  t.equal(consent.code, 0, consent.stderr)
  await waitFor('the lease granted', 30_000, async () =>
    (await (await clientOf(o2)).leases('outgoing')).some((l) => l.leaseId === leaseId && l.status === 'granted'),
  )
  t.pass("granted by the custodian's node under the patient's consent")
  // Let the holders take the lease envelope before the custodian goes away.
  await waitFor(
    'holders hold the lease envelope',
    30_000,
    async () => {
      const s = await (await clientOf(o2)).study(sid)
      return (s.replication?.holders ?? []).filter((h) => h !== 'org1').length >= 2
    },
    250,
  )

  // The custodian goes offline; org2 still gets the study from the other holders.
  await stopOrg(o1)
  const out = join(work, 'out')
  const got = await cli(o2, ['study', 'get', sid, '--out', out, '--json'])
  t.equal(got.code, 0, got.stderr)
  const files = (await readdir(out)).map((f) => join(out, f))
  t.equal(files.length, originals.length)
  const digests = async (xs: string[]): Promise<string[]> => (await Promise.all(xs.map(async (f) => pixelDigest(await readDicom(f)).digest))).sort()
  t.same(await digests(files), originals.map((o) => pixelDigest(o).digest).sort(), 'pixel-identical')
  for (const f of files) {
    const bytes = await readFile(f)
    t.notOk(bytes.includes(Buffer.from('Doe^Archibald')) || bytes.includes(Buffer.from('77654033')), 'images scope: no demographics')
    t.equal(firstString((await readDicom(f)).dataset, TAG.PatientIdentityRemoved), 'YES')
  }
  const full = await cli(o2, ['study', 'get', sid, '--out', join(work, 'full'), '--scope', 'full', '--json'])
  assertOneLineError(t, full, /images only/, 'full scope with an images lease')

  // Access records on the ledger: an unwrap and a retrieval, by org2.
  const c2 = await clientOf(o2)
  const head = (await c2.status()).height
  const accesses: string[] = []
  for (let h = 1; h <= head; h++) {
    for (const tx of (await c2.block(String(h))).txs as { type: string; payload: { leaseId: string; what: string } }[]) {
      if (tx.type === 'access.record' && tx.payload.leaseId === leaseId) accesses.push(tx.payload.what)
    }
  }
  await waitFor(
    'access records final',
    20_000,
    async () => {
      const st = (await c2.status()).height
      for (let h = head + 1; h <= st; h++) {
        for (const tx of (await c2.block(String(h))).txs as { type: string; payload: { leaseId: string; what: string } }[]) {
          if (tx.type === 'access.record' && tx.payload.leaseId === leaseId) accesses.push(tx.payload.what)
        }
      }
      return accesses.length >= 2
    },
    500,
  )
  t.same([...accesses].sort(), ['retrieve', 'unwrap'], 'the key unwrap and the retrieval are on the ledger')

  // The patient revokes: no more access.
  const rv = await cli(o2, ['patient', 'revoke', leaseId, '--key', join(work, 'patient.key'), '--json'])
  t.equal(rv.code, 0, rv.stderr)
  const after = await cli(o2, ['study', 'get', sid, '--out', join(work, 'after'), '--json'])
  assertOneLineError(t, after, /lease has ended/, 'after revocation the holders refuse')
  t.equal(jsonOf<{ error: { code: string } }>(t, after).error.code, 'SWARM_LEASE_ENDED')
  t.same(
    (await c2.leases('outgoing')).map((l) => l.status),
    ['revoked'],
  )
  await waitFor('the violation on the ledger', 20_000, async () => (await c2.audit(sid)).some((e) => e.type === 'violation.report'), 250)
  t.pass('the holder put the signed request on the ledger')
  // The lease has ended: the lessee (no replica duty) no longer keeps the copy it fetched under it.
  const lesseeFiles = async (): Promise<number> =>
    (await readdir(join(o2.dir, 'chunks'), { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).length
  await waitFor('the lessee deleted its copy', 20_000, async () => (await lesseeFiles()) === 0, 250)
  t.pass('no chunk or envelope of the study left at the lessee')
  const chunkListKept = async (): Promise<boolean> => {
    const r = await cli(o2, ['study', 'show', sid, '--json'])
    return jsonOf<{ local: { chunkList: boolean } }>(t, r).local.chunkList
  }
  await waitFor('the lessee dropped the chunk list', 20_000, async () => !(await chunkListKept()), 250)
  t.pass('nor its chunk list, which the refused get after the end had fetched again')

  // With the custodian back: a full-scope request waits for the patient's approval, another is denied.
  await startOrg(o1)
  const third = m.orgs.find((o) => o !== o1 && o !== o2) as typeof o1
  const fullReq = jsonOf<{ leaseId: string }>(
    t,
    await cli(o2, ['lease', 'request', sid, '--scope', 'full', '--duration', '1h', '--purpose', 'surgery planning', '--json']),
  ).leaseId
  const otherReq = jsonOf<{ leaseId: string }>(
    t,
    await cli(third, ['lease', 'request', sid, '--scope', 'full', '--duration', '1h', '--purpose', 'marketing', '--json']),
  ).leaseId
  // Each request is final at its requester when its command ends; the custodian, just restarted, applies the
  // same blocks moments later, and the next command may start before that (seen on a loaded CI run).
  const waiting = async (): Promise<string[]> =>
    jsonOf<LeaseView[]>(t, await cli(o1, ['lease', 'ls', '--incoming', '--json']))
      .filter((l) => l.status === 'requested')
      .map((l) => l.leaseId)
      .sort()
  await waitFor('the custodian sees both requests', 30_000, async () => (await waiting()).length >= 2, 250)
  t.same(await waiting(), [fullReq, otherReq].sort(), 'the custodian sees both requests waiting')
  const denied = await cli(o1, ['lease', 'deny', otherReq, '--reason', 'not a care purpose', '--json'])
  t.equal(denied.code, 0, denied.stderr)
  const thirdGet = await cli(third, ['study', 'get', sid, '--out', join(work, 'third'), '--json'])
  assertOneLineError(t, thirdGet, /no lease/, 'a denied requester gets no key and no chunks')
  // The custodian's operator grants before the patient approved: the ledger refuses it, and the envelope
  // its node wrapped for the grant does not stay behind.
  const custodianFiles = async (): Promise<number> =>
    (await readdir(join(o1.dir, 'chunks'), { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).length
  const filesBefore = await custodianFiles()
  const earlyGrant = await cli(o1, ['lease', 'grant', fullReq, '--json'])
  assertOneLineError(t, earlyGrant, /approve/, 'a grant the consent does not cover, before approval')
  await waitFor('the refused grant envelope deleted', 30_000, async () => (await custodianFiles()) === filesBefore, 250)
  t.pass('no envelope of the refused grant left in the custodian store')
  const approve = await cli(o2, ['patient', 'approve', fullReq, '--key', join(work, 'patient.key'), '--json'])
  t.equal(approve.code, 0, approve.stderr)
  await waitFor(
    'the approved full-scope lease granted',
    30_000,
    async () => (await c2.leases('outgoing')).some((l) => l.leaseId === fullReq && l.status === 'granted'),
    250,
  )
  const fullOut = join(work, 'full-out')
  const gf = await cli(o2, ['study', 'get', sid, '--out', fullOut, '--scope', 'full', '--json'])
  t.equal(gf.code, 0, gf.stderr)
  const restored = await Promise.all((await readdir(fullOut)).map((f) => readDicom(join(fullOut, f))))
  t.same(
    restored.map((r) => firstString(r.dataset, TAG.PatientID)).sort(),
    originals.map((r) => firstString(r.dataset, TAG.PatientID)).sort(),
    'the full scope restores the demographics',
  )
  t.same(
    restored.map((r) => firstString(r.dataset, TAG.SOPInstanceUID)).sort(),
    originals.map((r) => firstString(r.dataset, TAG.SOPInstanceUID)).sort(),
    'and the original UIDs',
  )

  // A second study of the same patient: its own owner key; the patient tool finds it and controls it as the first.
  const add2 = await cli(o1, ['study', 'add', join(repoRoot(), 'test/vectors/dicom/CT_small.dcm'), '--patient', join(work, 'patient.key.pub'), '--json'])
  t.equal(add2.code, 0, add2.stderr)
  const sid2 = jsonOf<{ studyId: string; owner: string }[]>(t, add2)[0]?.studyId ?? ''
  const [s1, s2] = [await c2.study(sid), await c2.study(sid2)]
  t.not(s2.owner, s1.owner, 'the two studies have different owner keys')
  t.not(s2.ownerEphemeral, s1.ownerEphemeral)
  const c2consent = await cli(o2, ['patient', 'consent', '--study', sid2, '--key', join(work, 'patient.key'), '--any-org', '--scope', 'images', '--json'])
  t.equal(c2consent.code, 0, c2consent.stderr)
  const imagesReq2 = jsonOf<{ leaseId: string }>(t, await cli(o2, ['lease', 'request', sid2, '--scope', 'images', '--duration', '1h', '--json'])).leaseId
  await waitFor('the second study lease granted under its consent', 30_000, async () =>
    (await c2.leases('outgoing')).some((l) => l.leaseId === imagesReq2 && l.status === 'granted'),
  )
  const rv2 = await cli(o2, ['patient', 'revoke', imagesReq2, '--key', join(work, 'patient.key'), '--json'])
  t.equal(rv2.code, 0, rv2.stderr)
  const fullReq2 = jsonOf<{ leaseId: string }>(t, await cli(o2, ['lease', 'request', sid2, '--scope', 'full', '--duration', '1h', '--json'])).leaseId
  const approve2 = await cli(o2, ['patient', 'approve', fullReq2, '--key', join(work, 'patient.key'), '--json'])
  t.equal(approve2.code, 0, approve2.stderr)
  await waitFor('the second study full lease granted on approval', 30_000, async () =>
    (await c2.leases('outgoing')).some((l) => l.leaseId === fullReq2 && l.status === 'granted'),
  )
  const by2 = (await c2.audit(sid2)).filter((e) => e.by.startsWith('patient:')).map((e) => [e.type, e.by])
  t.same(
    by2.map((x) => x[0]),
    ['consent.set', 'lease.revoke', 'lease.approve'],
    "the patient's consent, revocation and approval on the second study",
  )
  t.ok(
    by2.every((x) => x[1] === `patient:${s2.owner}`),
    "all signed by the second study's own key",
  )
  t.equal((await cli(o1, ['study', 'erase', sid2, '--json'])).code, 0)
  const e22 = await cli(o2, ['patient', 'erase', sid2, '--key', join(work, 'patient.key'), '--json'])
  t.equal(e22.code, 0, e22.stderr)

  // Erasure: the custodian and the patient both sign; then no node keeps anything of the study.
  const e1 = await cli(o1, ['study', 'erase', sid, '--json'])
  t.equal(e1.code, 0, e1.stderr)
  t.equal((await cli(o2, ['study', 'show', sid, '--json'])).code, 0, 'one signature: not erased yet')
  const e2 = await cli(o2, ['patient', 'erase', sid, '--key', join(work, 'patient.key'), '--json'])
  t.equal(e2.code, 0, e2.stderr)
  const chunkFiles = async (): Promise<number> => {
    let n = 0
    for (const o of m.orgs)
      n += (await readdir(join(o.dir, 'chunks'), { recursive: true, withFileTypes: true }).catch(() => [])).filter((e) => e.isFile()).length
    return n
  }
  await waitFor('every node deleted the study', 30_000, async () => (await chunkFiles()) === 0, 250)
  t.pass('no chunk, envelope or demographics file left on any node')
  for (const o of [o1, o2]) {
    const g = await cli(o, ['study', 'get', sid, '--out', join(work, `erased-${o.id}`), '--json'])
    assertOneLineError(t, g, /was erased/, `get on ${o.id} after erasure`)
    t.equal(jsonOf<{ error: { code: string } }>(t, g).error.code, 'STUDY_ERASED')
  }
  const again = await cli(o2, ['lease', 'request', sid, '--json'])
  assertOneLineError(t, again, /erased/, 'a lease on an erased study')

  // The audit: the same events in the same order on every node, erased study included.
  const trails: string[] = []
  for (const o of m.orgs) {
    const a = await cli(o, ['audit', sid, '--json'])
    t.equal(a.code, 0, a.stderr)
    trails.push(a.stdout)
  }
  t.equal(new Set(trails).size, 1, 'every node lists the same trail')
  const all = JSON.parse(trails[0] ?? '[]') as { type: string; by: string; height: number; leaseId: string | null }[]
  // What the holders served under each lease is on the ledger too, sent by the holders when serving goes quiet or the lease ends.
  const served = all.filter((e) => e.type === 'access.served')
  t.ok(
    served.some((e) => e.leaseId === leaseId) && served.every((e) => e.by !== o2.id),
    `the holders recorded what they served to ${o2.id}: ${served.map((e) => e.by).join(', ')}`,
  )
  const events = all.filter((e) => e.type !== 'access.served')
  t.same(
    events.map((e) => e.type),
    [
      'study.register',
      'lease.request',
      'consent.set',
      'lease.grant',
      'access.record',
      'access.record',
      'lease.revoke',
      'violation.report',
      'lease.request',
      'lease.request',
      'lease.deny',
      'lease.approve',
      'lease.grant',
      'access.record',
      'access.record',
      'study.erase',
      'study.erase',
    ],
  )
  t.same(
    events.map((e) => (e.by.startsWith('patient:') ? 'patient' : e.by)).filter((_, i) => i !== 7),
    ['org1', o2.id, 'patient', 'org1', o2.id, o2.id, 'patient', o2.id, third.id, 'org1', 'patient', 'org1', o2.id, o2.id, 'org1', 'patient'],
  )
  t.ok(
    events.every((e, i) => i === 0 || e.height >= (events[i - 1]?.height ?? 0)),
    'in ledger order',
  )
  // What the patient's watch saw, in order.
  await waitFor('the watch saw the erasure', 10_000, () => watched.includes('"erased"'), 200)
  watch.kill('SIGTERM')
  const kinds = watched
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { kind: string; for: string[] })
  const seen = [...new Set(kinds.map((k) => k.kind))]
  t.same(
    seen,
    ['lease-requested', 'lease-granted', 'access', 'lease-revoked', 'violation', 'lease-denied', 'study-added', 'erased'],
    'the patient was told of every step, and of the second study found by its key',
  )
  t.ok(
    kinds.every((k) => k.for.includes('patient')),
    "each notification concerns the patient's study",
  )
  const text = await cli(o3.id === o2.id ? o1 : o3, ['audit', sid])
  t.match(text.stdout, /lease granted\s+by org1/)
  t.notMatch(text.stdout, /Doe|Archibald|77654033/, 'no patient identifier in the trail')

  // After the whole run: no patient identifier from the input in any node's ledger, logs or chunk store.
  const secrets = ['Doe^Archibald', 'Archibald', '77654033']
  const leaks: string[] = []
  let checked = 0
  for (const o of m.orgs) {
    const files = [
      ...(await readdir(join(o.dir, 'db'), { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name)),
      ...(await readdir(join(o.dir, 'chunks'), { recursive: true, withFileTypes: true }).catch(() => []))
        .filter((e) => e.isFile())
        .map((e) => join(e.parentPath, e.name)),
      join(o.dir, 'daemon.log'),
    ]
    for (const f of files) {
      const b = await readFile(f).catch(() => Buffer.alloc(0))
      checked++
      for (const x of secrets) if (b.includes(Buffer.from(x))) leaks.push(`${x} in ${f}`)
    }
  }
  t.ok(checked > 20, `${checked} files checked`)
  t.same(leaks, [], 'no patient identifier anywhere a node wrote')
})
