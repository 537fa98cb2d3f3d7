import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ApiClient } from '../src/api/index.js'
import { RadError, sleep } from '../src/util/index.js'
import { encodePatientPublicKey, generatePatientKeys } from '../src/crypto/index.js'
import { pixelDigest, readDicom } from '../src/study/index.js'
import { repoRoot } from './process.js'
import { clientOf, devnetDown, devnetHeal, devnetPartition, devnetUp, startOrg, stopOrg, waitHeight, type DevnetOrg } from './devnet.js'

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
  return Promise.all(orgs.map(async (o) => {
    const s = await (await clientOf(o)).status()
    return { id: o.id, height: s.height, head: s.headHash, root: s.stateRoot }
  }))
}

/** Sorted pixel digests of DICOM files. */
async function digestsOf(files: readonly string[]): Promise<string[]> {
  return (await Promise.all(files.map(async (f) => pixelDigest(await readDicom(f)).digest))).sort()
}

async function follow(c: ApiClient, id: string): Promise<Record<string, unknown>> {
  for (;;) {
    const j = await c.job(id)
    if (j.state === 'done') return j
    if (j.state === 'failed') throw new RadError('DEMO_FAILED', `study job failed: ${JSON.stringify(j.error)}`)
    await sleep(200)
  }
}

/** org1 adds a CT study owned by a patient, every node sees the registration, org1 reads it back. */
async function studyStep(dir: string, clients: readonly ApiClient[], say: (line: string) => void): Promise<void> {
  const [c1, , c3] = clients as [ApiClient, ApiClient, ApiClient]
  const input = join(repoRoot(), 'test', 'vectors', 'dicom', 'study-77654033', 'CT2')
  const inputs = (await readdir(input)).map((f) => join(input, f))
  say(`7. org1 adds a CT study (${inputs.length} images) for a patient who holds their own key`)
  const patient = generatePatientKeys()
  patient.secret.fill(0)
  const job = await follow(c1, await c1.addStudies([input], { patient: encodePatientPublicKey(patient.publicKey) }))
  const study = (job.studies as { studyId: string; height: number; chunks: number; size: number }[])[0]
  if (study === undefined) throw new RadError('DEMO_FAILED', 'no study registered')
  say(`   de-identified (PS3.15 Basic profile), encrypted into ${study.chunks} chunk(s), ${study.size} bytes; registered as ${study.studyId} at height ${study.height}`)
  const seen = await c3.study(study.studyId)
  say(`   org3's ledger shows it: custodian ${String(seen.custodian)}, owner ${short(String(seen.owner))}..., content root ${short(String(seen.contentRoot))}...; no patient data on the ledger`)
  const out = join(dir, 'study-out')
  const got = await follow(c1, await c1.getStudy(study.studyId, { out, scope: 'images' }))
  const files = (await readdir(out)).map((f) => join(out, f))
  const same = JSON.stringify(await digestsOf(files)) === JSON.stringify(await digestsOf(inputs))
  if (!same) throw new RadError('DEMO_FAILED', 'pixel digests differ after the round trip')
  say(`   org1 decrypts it back: ${String(got.files)} de-identified DICOM files, every pixel digest equal to the original's`)
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
      const burst = await Promise.all(Array.from({ length: Math.min(50, opts.notes - i) }, (_, k) => {
        const c = clients[(i + k) % 4] as ApiClient
        return c.submitNote(`note ${i + k + 1}`).then((hash) => ({ hash, client: c }))
      }))
      hashes.push(...burst)
    }
    const last = hashes[hashes.length - 1]
    if (last !== undefined) await last.client.tx(last.hash, 30_000)
    let final = 0
    for (const c of clients) {
      for (const { hash } of hashes.slice(-20)) if ((await c.tx(hash, 10_000)).status === 'final') final++
    }
    if (final !== 20 * clients.length) throw new RadError('DEMO_FAILED', 'notes did not become final on every node')
    const h1 = await heads(m.orgs)
    say(`   ${hashes.length} notes final in ${((performance.now() - t0) / 1000).toFixed(1)} s; every node agrees: height ${h1[0]?.height}, state root ${short(h1[0]?.root ?? '')}`)

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
    say(`   heights after 3 s of split: ${still.map((s) => `${s.id}=${s.height}`).join(' ')}${moved ? ' (a block in flight finished)' : ' (unchanged)'}; no conflicting blocks`)
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
      if (new Set(hs).size !== 1) throw new RadError('DEMO_FAILED', `nodes disagree at height ${h}`)
    }
    const head = await (now[0] as ApiClient).block(String(minTop))
    const cert = head.certificate as { signers: string[]; round: number } | null
    say(`   checked heights 1..${minTop} on all four; block ${minTop} is certified by ${cert?.signers.length ?? 0} of 4 authorities`)
    await studyStep(dir, now, say)
    say('Demo complete: four organizations, one ledger, no central broker.')
  } finally {
    await devnetDown(dir, !opts.keep && opts.dir === undefined).catch(() => 0)
    if (opts.keep || opts.dir !== undefined) say(`devnet kept in ${dir} (radchain devnet up --dir ${dir} restarts it)`)
    else await rm(dir, { recursive: true, force: true })
  }
}
