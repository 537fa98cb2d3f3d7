import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ApiClient, AuditEventView, LeaseView } from '../api/index.js'
import { fromHex, sleep, toHex } from '../util/index.js'
import { PatientStudyKeys, encodePatientPublicKey, generatePatientKeys, type OrgKeys } from '../crypto/index.js'
import { consentTx, signTx, type TxType } from '../chain/index.js'
import { pixelDigest, readDicom } from '../study/index.js'
import { DevnetError } from './errors.js'
import { repoRoot } from './process.js'
import { clientOf, devnetDown, devnetHeal, devnetPartition, devnetUp, startOrg, stopOrg, waitHeight, waitJob, type DevnetOrg } from './devnet.js'

/** Options of the devnet demo. */
export interface DemoOpts {
  /** Notes to record across the organizations. */
  readonly notes: number
  /** Keep the devnet folder instead of removing it. */
  readonly keep: boolean
  /** Devnet folder (a fresh temporary one by default). */
  readonly dir?: string
  readonly basePort: number
  readonly say: (line: string) => void
}

async function heads(orgs: readonly DevnetOrg[]): Promise<{ id: string; height: number; head: string; root: string }[]> {
  return Promise.all(
    orgs.map(async (o) => {
      const s = await (await clientOf(o)).status()
      return { id: o.id, height: s.height, head: s.headHash, root: s.stateRoot }
    }),
  )
}

/** Sorted pixel digests of DICOM files. */
async function digestsOf(files: readonly string[]): Promise<string[]> {
  return (await Promise.all(files.map(async (f) => pixelDigest(await readDicom(f)).digest))).sort()
}

/** A transaction signed with the owner key of the patient's study `studyId`, submitted through a node, waited for until final. */
async function patientTx<P>(c: ApiClient, keys: OrgKeys, studyId: string, type: TxType<P>, payload: P): Promise<void> {
  const st = await c.status()
  const study = await c.study(studyId)
  const signer = new PatientStudyKeys(keys).signerFor(fromHex(studyId), fromHex(study.owner ?? ''), fromHex(study.ownerEphemeral ?? ''))
  if (signer === null) throw new DevnetError('DEMO_FAILED', `study ${studyId} is not the patient's`)
  const tx = signTx(signer, { chainId: st.chainId, type: type.name, nonce: await c.nonce(toHex(signer.publicKey)), payload })
  const r = await c.tx(await c.submitTx(tx.bytes), 30_000)
  if (r.status !== 'final') throw new DevnetError('DEMO_FAILED', `${type.name} not final: ${r.error?.message ?? r.status}`)
}

const EVENT_TEXT: Record<string, string> = {
  'study.register': 'study registered',
  'lease.request': 'lease requested',
  'consent.set': 'consent set',
  'lease.approve': 'lease approved by the patient',
  'lease.grant': 'lease granted',
  'lease.deny': 'lease denied',
  'lease.revoke': 'lease revoked',
  'access.served': 'chunks served under the lease',
  'violation.report': 'VIOLATION: request under an ended lease',
  'study.erase': 'erasure signed',
}

function auditLines(events: readonly AuditEventView[]): string[] {
  return events.map((e) => {
    const what =
      e.type === 'access.record'
        ? e.detail.what === 'unwrap'
          ? 'key unwrapped under the lease'
          : 'study retrieved under the lease'
        : (EVENT_TEXT[e.type] ?? e.type)
    const by = e.by.startsWith('patient:') ? 'the patient' : e.by
    return `     height ${String(e.height).padStart(4)}  ${new Date(e.time).toISOString()}  ${what.padEnd(40)} by ${by}`
  })
}

/**
 * The imaging story: an imaging center (org1) adds a study for a patient who
 * holds their own key; a hospital that does not hold it asks for a lease;
 * the patient's consent grants it; the imaging center goes offline; the
 * hospital fetches the study from the other holders, checks it and writes
 * DICOM files; the audit trail; the lease expires and a further fetch is
 * refused and put on the ledger as a violation.
 */
async function imagingStory(dir: string, orgs: readonly DevnetOrg[], say: (line: string) => void): Promise<void> {
  const o1 = orgs[0] as DevnetOrg
  const c1 = await clientOf(o1)
  const input = join(repoRoot(), 'test', 'vectors', 'dicom', 'study-77654033', 'CT2')
  const inputs = (await readdir(input)).map((f) => join(input, f))
  say(`7. The imaging center (org1) adds a CT study of ${inputs.length} images for a patient who holds their own key`)
  const patient = generatePatientKeys()
  patient.secret.fill(0)
  const job = await waitJob(c1, await c1.addStudies([input], { patient: encodePatientPublicKey(patient.publicKey) }), 'add')
  const study = job.studies[0]
  if (study === undefined) throw new DevnetError('DEMO_FAILED', 'no study registered')
  const sid = study.studyId
  say(
    `   de-identified (DICOM PS3.15 Basic profile), encrypted under a fresh key, ${study.size} bytes in ${study.chunks} chunk(s); registered as ${sid} at height ${study.height}`,
  )
  say(`   replicated to ${study.holders.join(', ')}; the ledger holds ids and hashes only, no patient data`)
  const nro = orgs.find((o) => !study.holders.includes(o.id)) as DevnetOrg
  const cn = await clientOf(nro)

  say(`8. A hospital (${nro.id}) asks for a 20-second lease on the images, for a second opinion`)
  const leaseId = await cn.requestLease(sid, { scope: 'images', durationMs: 20_000, purpose: 'second opinion' })
  await cn.tx(leaseId, 30_000)
  const early = await cn
    .getStudy(sid, { out: join(dir, 'early') })
    .then((id) => waitJob(cn, id, 'get'))
    .then(
      () => 'served',
      (err: unknown) => (err instanceof Error ? err.message : String(err)),
    )
  say(
    `   lease ${short(leaseId)}... requested; the patient has not consented yet, so nothing is granted (a fetch now: ${early.includes('no lease') ? 'refused, no lease' : early})`,
  )

  say("9. The patient consents: images, for any organization, up to 30 days; the imaging center's node grants on its own")
  await patientTx(cn, patient.keys, sid, consentTx, {
    studyId: fromHex(sid),
    anyOrg: true,
    orgs: [],
    purposes: [],
    scopes: ['images'],
    maxDurationMs: 30 * 86_400_000,
    researchPool: false,
  })
  let granted: LeaseView | undefined
  for (let i = 0; i < 150 && granted === undefined; i++) {
    granted = (await cn.leases('outgoing')).find((l) => l.leaseId === leaseId && l.status === 'granted')
    if (granted === undefined) await sleep(200)
  }
  if (granted === undefined) throw new DevnetError('DEMO_FAILED', 'the lease was not granted')
  say(
    `   granted until ${new Date(granted.expiry ?? 0).toISOString()} (chain time); the study key, wrapped to ${nro.id}'s public key, sits with the study's chunks at the holders`,
  )
  // The holders take the lease envelope before the imaging center goes away.
  for (let i = 0; i < 150; i++) {
    const r = await cn.study(sid)
    if ((r.replication?.holders ?? []).filter((h) => h !== o1.id).length >= 2) break
    await sleep(200)
  }

  say('10. The imaging center goes offline; the hospital fetches the study from the other holders')
  await stopOrg(o1)
  const out = join(dir, `${nro.id}-images`)
  const t0 = performance.now()
  const got = await waitJob(cn, await cn.getStudy(sid, { out, scope: 'images' }), 'get')
  const files = (await readdir(out)).map((f) => join(out, f))
  const same = JSON.stringify(await digestsOf(files)) === JSON.stringify(await digestsOf(inputs))
  if (!same) throw new DevnetError('DEMO_FAILED', 'pixel digests differ after the round trip')
  const anyName = (await Promise.all(files.map(async (f) => (await readFile(f)).includes(Buffer.from('Doe^Archibald'))))).some((x) => x)
  if (anyName) throw new DevnetError('DEMO_FAILED', 'a patient name reached the images scope')
  say(
    `    ${got.files} DICOM files written to ${out} in ${((performance.now() - t0) / 1000).toFixed(1)} s; every pixel digest equals the original's; no demographics in them`,
  )

  const other = orgs.find((o) => o !== o1 && o !== nro) as DevnetOrg
  const co = await clientOf(other)
  say(`11. The audit trail, as any node (${other.id}) reads it from the ledger`)
  // The lessee's access records become final at the next blocks: the retrieval is the last of them (its DICOMweb
  // listener, showing the leased study to viewers, may have unwrapped the key once more before).
  let trail: AuditEventView[] = []
  for (let i = 0; i < 150; i++) {
    trail = await co.audit(sid)
    if (trail.some((e) => e.type === 'access.record' && e.detail.what === 'retrieve')) break
    await sleep(200)
  }
  for (const l of auditLines(trail)) say(l)

  say('12. The lease expires (chain time); a further fetch is refused by the holders and recorded as a violation')
  const expiry = granted.expiry ?? 0
  for (let i = 0; i < 300 && (await cn.status()).headTime <= expiry; i++) await sleep(200)
  const again = await cn
    .getStudy(sid, { out: join(dir, 'again') })
    .then((id) => waitJob(cn, id, 'get'))
    .then(
      () => 'served',
      (err: unknown) => (err instanceof Error ? err.message : String(err)),
    )
  say(`    ${again === 'served' ? 'SERVED (unexpected)' : `refused: ${again.replace(/^study job failed: /, '')}`}`)
  if (again === 'served') throw new DevnetError('DEMO_FAILED', 'a fetch after expiry was served')
  let events: AuditEventView[] = []
  for (let i = 0; i < 100; i++) {
    events = await co.audit(sid)
    if (events.some((e) => e.type === 'violation.report')) break
    await sleep(200)
  }
  const v = events.filter((e) => e.type === 'violation.report')
  if (v.length === 0) throw new DevnetError('DEMO_FAILED', 'the violation did not reach the ledger')
  for (const l of auditLines(v)) say(l)
  say(`    the evidence is ${nro.id}'s own signed request: every node checked its signature and the lease's end before accepting it`)
}

function short(h: string): string {
  return h.slice(0, 12)
}

/**
 * The story of a 4-organization ledger on this machine: four imaging
 * organizations start, agree on blocks, record notes sent to any of them,
 * survive a crashed authority and a network split, and a node that lost
 * its disk state catches up on its own; then one adds a study for a patient
 * and reads it back.
 */
export async function runDemo(opts: DemoOpts): Promise<void> {
  const say = opts.say
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'radchain-demo-')))
  try {
    say(`1. Four radiology organizations create their keys and one genesis, in ${dir}`)
    const m = await devnetUp({ dir, orgs: 4, basePort: opts.basePort, config: { logLevel: 'warn' } })
    const [o1, o2, o3, o4] = m.orgs as [DevnetOrg, DevnetOrg, DevnetOrg, DevnetOrg]
    for (const o of m.orgs) say(`   ${o.id}: API http://127.0.0.1:${o.apiPort}, p2p 127.0.0.1:${o.p2pPort}, key ${short(o.signKey)}...`)
    const h0 = await heads(m.orgs)
    say(`   chain ${m.chainId}: all four final at height ${h0[0]?.height}, head ${short(h0[0]?.head ?? '')}`)

    say(`2. Staff record ${opts.notes} notes, spread over the four organizations' nodes`)
    const clients = await Promise.all(m.orgs.map((o) => clientOf(o)))
    const t0 = performance.now()
    const hashes: { hash: string; client: ApiClient }[] = []
    for (let i = 0; i < opts.notes; i += 50) {
      const burst = await Promise.all(
        Array.from({ length: Math.min(50, opts.notes - i) }, (_, k) => {
          const c = clients[(i + k) % 4] as ApiClient
          return c.submitNote(`note ${i + k + 1}`).then((hash) => ({ hash, client: c }))
        }),
      )
      hashes.push(...burst)
    }
    const last = hashes[hashes.length - 1]
    if (last !== undefined) await last.client.tx(last.hash, 30_000)
    let final = 0
    for (const c of clients) {
      for (const { hash } of hashes.slice(-20)) if ((await c.tx(hash, 10_000)).status === 'final') final++
    }
    if (final !== 20 * clients.length) throw new DevnetError('DEMO_FAILED', 'notes did not become final on every node')
    const h1 = await heads(m.orgs)
    say(
      `   ${hashes.length} notes final in ${((performance.now() - t0) / 1000).toFixed(1)} s; every node agrees: height ${h1[0]?.height}, state root ${short(h1[0]?.root ?? '')}`,
    )

    say('3. org1 crashes (kill -9); the other three keep finalizing')
    await stopOrg(o1, 'SIGKILL')
    const before = (await heads([o2]))[0]?.height ?? 0
    await waitHeight(m, before + 3, { orgs: [o2, o3, o4], timeoutMs: 20_000 })
    say(`   org2, org3, org4 went from height ${before} to ${(await heads([o2]))[0]?.height} without org1`)

    say('4. org1 restarts from its own disk and catches up')
    await startOrg(o1)
    const target = (await heads([o2]))[0]?.height ?? 0
    await waitHeight(m, target, { orgs: [o1], timeoutMs: 20_000 })
    say(`   org1 synced to height ${(await heads([o1]))[0]?.height} and votes again`)

    say('5. The network splits in two halves: no half has more than 2/3 of the votes, so nothing is finalized')
    await devnetPartition(dir, [o1.id, o2.id], [o3.id, o4.id])
    await sleep(1500)
    const split = await heads(m.orgs)
    await sleep(3000)
    const still = await heads(m.orgs)
    const moved = still.some((s, i) => s.height !== split[i]?.height)
    say(
      `   heights after 3 s of split: ${still.map((s) => `${s.id}=${s.height}`).join(' ')}${moved ? ' (a block in flight finished)' : ' (unchanged)'}; no conflicting blocks`,
    )
    await devnetHeal(dir)
    const top = Math.max(...still.map((s) => s.height))
    await waitHeight(m, top + 2, { timeoutMs: 20_000 })
    const healed = await heads(m.orgs)
    say(`   healed: the chain resumed, now at ${healed.map((s) => `${s.id}=${s.height}`).join(' ')}`)

    say('6. Every node holds the same block at every height')
    // org1 restarted with a new API token: fresh clients.
    const now = await Promise.all(m.orgs.map((o) => clientOf(o)))
    const minTop = Math.min(...healed.map((s) => s.height))
    for (let h = 1; h <= minTop; h++) {
      const hs = await Promise.all(now.map(async (c) => String((await c.block(String(h))).hash)))
      if (new Set(hs).size !== 1) throw new DevnetError('DEMO_FAILED', `nodes disagree at height ${h}`)
    }
    const head = await (now[0] as ApiClient).block(String(minTop))
    const cert = head.certificate as { signers: string[]; round: number } | null
    say(`   checked heights 1..${minTop} on all four; block ${minTop} is certified by ${cert?.signers.length ?? 0} of 4 authorities`)
    await imagingStory(dir, m.orgs, say)
    say('Demo complete: four organizations, one ledger, no central broker; the patient decided, and every access is on the ledger.')
  } finally {
    await devnetDown(dir, !opts.keep && opts.dir === undefined).catch(() => 0)
    if (opts.keep || opts.dir !== undefined) say(`devnet kept in ${dir} (radchain devnet up --dir ${dir} restarts it)`)
    else await rm(dir, { recursive: true, force: true })
  }
}
