import t from 'tap'
import { spawn } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { AddedStudyView, ApiClient } from '../../src/api/index.js'
import { parsePatientPublicKey } from '../../src/crypto/index.js'
import { initDataDir } from '../../src/node/index.js'
import { DaemonProcess, cliPath, repoRoot } from '../../src/devnet/index.js'
import { toHex } from '../../src/util/index.js'
import { assertOneLineError, cleanEnv, jsonOf, runCli, tempDir } from './helpers/cli.js'

const VECTORS = join(repoRoot(), 'test/vectors/dicom')

type TxJSON = { hash: string; type: string; sender: string; nonce: number; payload: Record<string, unknown> }

/** Every transaction on the ledger, with its height. */
async function ledgerTxs(client: ApiClient): Promise<(TxJSON & { height: number })[]> {
  const head = (await client.status()).height
  const out: (TxJSON & { height: number })[] = []
  for (let h = 1; h <= head; h++) for (const x of (await client.block(String(h))).txs as TxJSON[]) out.push({ ...x, height: h })
  return out
}

/** Every string value in a JSON value, at any depth. */
function strings(v: unknown): string[] {
  if (typeof v === 'string') return [v]
  if (Array.isArray(v)) return v.flatMap(strings)
  if (v !== null && typeof v === 'object') return Object.values(v).flatMap(strings)
  return []
}

async function waitFor(what: string, ms: number, ok: () => boolean | Promise<boolean>): Promise<void> {
  const end = Date.now() + ms
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

t.test('two studies of one patient share nothing on the ledger; the patient tool finds and controls both, and watch covers a later one', async (t) => {
  const dir = await tempDir(t, 'radchain-patient-')
  const node = join(dir, 'node')
  const daemon = new DaemonProcess(node)
  t.teardown(() => daemon.kill())
  await initDataDir({ dir: node, dev: true, apiPort: 0, scrypt: { N: 1024, r: 8, p: 1 }, params: { blockIntervalMs: 300, chunkSize: 4096 } })
  const client = await daemon.start()
  const env = { RADCHAIN_PASSPHRASE: 'patient passphrase' }
  const cli = (args: string[], e: Record<string, string> = env): ReturnType<typeof runCli> => runCli([...args, '--node', node], { env: e, timeoutMs: 60_000 })
  const key = join(dir, 'patient.key')
  const kg = await runCli(['patient', 'keygen', '--out', key, '--json'], { env })
  t.equal(kg.code, 0, kg.stderr)
  const pub = parsePatientPublicKey(await readFile(`${key}.pub`, 'utf8'))
  const add = async (input: string): Promise<AddedStudyView> => {
    const r = await cli(['study', 'add', join(VECTORS, input), '--patient', `${key}.pub`, '--json'])
    t.equal(r.code, 0, r.stderr)
    return jsonOf<AddedStudyView[]>(t, r)[0] as AddedStudyView
  }

  // Two studies of the patient, registered through the real path (study add on the daemon).
  const a = await add('CT_small.dcm')
  const b = await add('MR_small.dcm')

  // Consent on all the patient's studies: the tool finds both and signs each with its own key.
  const consent = await cli(['patient', 'consent', '--key', key, '--any-org', '--scope', 'images', '--json'])
  t.equal(consent.code, 0, consent.stderr)
  const set = jsonOf<{ studies: { studyId: string; tx: string; height: number }[]; standing: string }>(t, consent)
  t.same(set.studies.map((s) => s.studyId).sort(), [a.studyId, b.studyId].sort(), 'consent set on both studies')
  t.equal(set.standing, `${key}.consent.json`, 'the standing policy is kept beside the key')
  t.equal(JSON.parse(await readFile(set.standing, 'utf8')).policy.anyOrg, true)

  // What the ledger holds of the two: registrations and consents.
  const txs = await ledgerTxs(client)
  const reg = (id: string): TxJSON => txs.find((x) => x.type === 'study.register' && x.payload.studyId === id) as TxJSON
  const cons = (id: string): TxJSON => txs.find((x) => x.type === 'consent.set' && x.payload.studyId === id) as TxJSON
  const [ra, rb, ca, cb] = [reg(a.studyId), reg(b.studyId), cons(a.studyId), cons(b.studyId)]
  t.ok(ra && rb && ca && cb, 'both registrations and both consents are on the ledger')
  // Fields that are the same for every registration of this custodian, or for every consent with this policy: they say
  // "a study at org1" and "this policy", not "this patient". Every other field must differ between the two.
  const SHARED_BY_ALL: Record<string, readonly string[]> = {
    // extends: null in both (neither is a version of another study).
    'study.register': ['custodian', 'chunkSize', 'chunkCount', 'extends'],
    'consent.set': ['anyOrg', 'orgs', 'purposes', 'scopes', 'maxDurationMs', 'researchPool'],
  }
  // A registration is sent by the custodian (visible by design: which custodian keeps a study); a consent by the study's key.
  t.equal(ra.sender, rb.sender, 'both registrations are sent by the custodian')
  const custodianKey = ra.sender
  for (const [x, y] of [
    [ra, rb],
    [ca, cb],
  ] as const) {
    if (x.type === 'consent.set') t.not(x.sender, y.sender, 'consent: different senders')
    t.not(x.hash, y.hash)
    for (const f of Object.keys(x.payload)) {
      if ((SHARED_BY_ALL[x.type] ?? []).includes(f)) continue
      t.not(JSON.stringify(x.payload[f]), JSON.stringify(y.payload[f]), `${x.type}: ${f} differs`)
    }
    // No value of one appears anywhere in the other (a key, id or hash reused under another name).
    const xs = new Set([x.sender, ...strings(x.payload)].filter((s) => /^[0-9a-f]{32,}$/.test(s) && s !== custodianKey))
    const shared = [y.sender, ...strings(y.payload)].filter((s) => xs.has(s))
    t.same(shared, [], `${x.type}: no key, id or hash in common`)
  }
  // Nor between a registration of one and the consent of the other (other than the study id the consent is about).
  const valuesOf = (x: TxJSON): string[] => [x.sender, ...strings(x.payload)].filter((s) => /^[0-9a-f]{32,}$/.test(s) && s !== custodianKey)
  t.same(
    valuesOf(ra).filter((s) => valuesOf(cb).includes(s)),
    [],
    "a's registration and b's consent share nothing",
  )
  t.same(
    valuesOf(rb).filter((s) => valuesOf(ca).includes(s)),
    [],
    "b's registration and a's consent share nothing",
  )
  t.equal(ca.sender, ra.payload.owner, "study a's consent is signed by its own owner key")
  t.equal(cb.sender, rb.payload.owner, "study b's consent is signed by its own owner key")
  t.equal(ca.nonce, 0, 'each study key is a sender of its own (nonce 0)')
  t.equal(cb.nonce, 0)
  // The patient's own keys appear nowhere on the ledger.
  const ledger = JSON.stringify(txs)
  for (const k of [pub.sign, pub.x25519]) t.notOk(ledger.includes(toHex(k)), 'no patient key on the ledger')

  // The tool lists both; another patient finds none and cannot act on them.
  const mine = await cli(['patient', 'studies', '--key', key, '--json'])
  t.equal(mine.code, 0, mine.stderr)
  t.same(
    jsonOf<{ studies: { studyId: string }[] }>(t, mine)
      .studies.map((s) => s.studyId)
      .sort(),
    [a.studyId, b.studyId].sort(),
  )
  const other = join(dir, 'other.key')
  t.equal((await runCli(['patient', 'keygen', '--out', other, '--json'], { env })).code, 0)
  t.same(jsonOf<{ studies: unknown[] }>(t, await cli(['patient', 'studies', '--key', other, '--json'])).studies, [], 'another patient finds none')
  assertOneLineError(
    t,
    await cli(['patient', 'erase', a.studyId, '--key', other, '--json']),
    /not one of this patient key's studies/,
    'erase by another patient',
    'PATIENT_NOT_OWNER',
  )

  // The patient's half of erasing study b, then the custodian's: erased.
  const e1 = await cli(['patient', 'erase', b.studyId, '--key', key, '--json'])
  t.equal(e1.code, 0, e1.stderr)
  const e2 = await cli(['study', 'erase', b.studyId, '--json'])
  t.equal(e2.code, 0, e2.stderr)
  assertOneLineError(t, await cli(['study', 'show', b.studyId, '--json']), /erased/, 'show after erasure', 'STUDY_ERASED')

  // A study added while `patient watch` runs gets the standing consent at once.
  const watch = spawn(process.execPath, [cliPath(), 'patient', 'watch', '--key', key, '--node', node, '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: cleanEnv(env),
  })
  t.teardown(() => {
    watch.kill('SIGKILL')
  })
  let out = ''
  let err = ''
  watch.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
  watch.stderr.setEncoding('utf8').on('data', (d: string) => (err += d))
  await waitFor('watch subscribed', 30_000, () => err.includes('watching for your studies'))
  const c = await add('MR_small_implicit.dcm')
  type Seen = { studyId: string; consent: string | null }
  const seen = (): Seen[] =>
    out
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Seen)
  await waitFor('watch sets consent on the new study', 30_000, () => seen().some((s) => s.studyId === c.studyId && s.consent !== null))
  const st = await client.tx((seen().find((s) => s.studyId === c.studyId) as Seen).consent as string, 30_000)
  t.equal(st.status, 'final', 'the consent watch sent is final')
  t.ok(
    (await client.audit(c.studyId)).some((e) => e.type === 'consent.set'),
    'the new study has its consent on the ledger',
  )
  watch.kill('SIGTERM')

  // A study added while no watch runs: covered once the patient runs watch again.
  const d = await add('CT_small.dcm')
  t.notOk(
    (await client.audit(d.studyId)).some((e) => e.type === 'consent.set'),
    'without a running watch the new study has no consent yet',
  )
  const again = spawn(process.execPath, [cliPath(), 'patient', 'watch', '--key', key, '--node', node, '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: cleanEnv(env),
  })
  t.teardown(() => {
    again.kill('SIGKILL')
  })
  let out2 = ''
  again.stdout.setEncoding('utf8').on('data', (x: string) => (out2 += x))
  await waitFor('watch catches up', 30_000, () => out2.includes(d.studyId))
  const caught = JSON.parse(out2.split('\n').find((l) => l.includes(d.studyId)) ?? '{}') as Seen
  t.ok(caught.consent !== null, 'the missed study gets the standing consent when watch starts')
  t.notOk(out2.includes(c.studyId), 'a study already covered is not set again')
  await client.tx(caught.consent as string, 30_000)
  t.ok((await client.audit(d.studyId)).some((e) => e.type === 'consent.set'))
  again.kill('SIGTERM')

  // A standing consent file that is not radchain's is refused, not guessed at.
  await writeFile(`${key}.consent.json`, '{"version":1,"policy":{"anyOrg":"yes"},"appliedThrough":0}')
  assertOneLineError(
    t,
    await cli(['patient', 'watch', '--key', key, '--json']),
    /consent\.json: its policy is malformed/,
    'a bad standing file',
    'PATIENT_BAD_POLICY',
  )
})
