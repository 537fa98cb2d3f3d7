import t from 'tap'
import { randomBytes } from 'node:crypto'
import {
  BLOCK_TIME_RING,
  blockTimeAt,
  violationReported,
  decodeTx,
  getEnvelopeKeys,
  leaseClaimBytes,
  getErased,
  getLease,
  getNonce,
  getStudy,
  leaseActive,
  signTx,
  type ConsentPolicy,
  type RegisterStudyPayload,
  type Tx,
} from '../../../src/chain/index.js'
import { DOMAIN, signingBytes, type Ed25519Signer } from '../../../src/crypto/index.js'
import { CHAIN_ID, advance, makeChain, testSigner, type TestChain } from './fixtures.js'

const CHUNK = 4096
const DAY = 24 * 3600_000

const chain = (): TestChain =>
  makeChain({ authorities: 4, params: { chunkSize: CHUNK, maxBlockTxs: 16, maxBlockBytes: 64 * 1024, maxTxBytes: 8 * 1024, blockIntervalMs: 100 } })
const org = (c: TestChain, id: string): Ed25519Signer => (c.orgs.find((o) => o.id === id) as { signer: Ed25519Signer }).signer
const patient = testSigner('patient')
const stranger = testSigner('stranger')

function tx(c: TestChain, signer: Ed25519Signer, type: string, payload: unknown, nonceOffset = 0): Tx {
  return signTx(signer, { chainId: CHAIN_ID, type, nonce: getNonce(c.state, signer.publicKey) + nonceOffset, payload })
}

/** Applies one transaction in its own block; returns its error code, or undefined when it was accepted. */
function run(c: TestChain, x: Tx, dt?: number): string | undefined {
  const r = advance(c, [x], dt === undefined ? {} : { dt })
  return r.rejected[0]?.error.code
}

/** The id of the study setup() registers (each setup has a chain of its own). */
const STUDY_ID = new Uint8Array(16).fill(0x5e)

function study(owner: Uint8Array | null, studyId: Uint8Array = new Uint8Array(randomBytes(16))): RegisterStudyPayload {
  const z = (n: number): Uint8Array => new Uint8Array(32).fill(n)
  return {
    studyId,
    custodian: 'auth-0',
    owner,
    contentRoot: z(1),
    size: 2 * (CHUNK + 16),
    chunkCount: 2,
    chunkSize: CHUNK,
    studyDigest: z(2),
    custodianEnvelope: z(3),
    ownerEnvelope: owner === null ? null : z(4),
    demographics: z(5),
    ownerEphemeral: owner === null ? null : z(6),
  }
}

const policy = (over: Partial<ConsentPolicy> = {}): ConsentPolicy => ({
  studyId: STUDY_ID,
  anyOrg: true,
  orgs: [],
  purposes: [],
  scopes: ['images'],
  maxDurationMs: 30 * DAY,
  researchPool: false,
  ...over,
})

/** A chain with a study of auth-0 owned by the patient, and auth-1's envelope key published. */
function setup(owner: Uint8Array | null = patient.publicKey): { c: TestChain; s: RegisterStudyPayload } {
  const c = chain()
  const s = study(owner, STUDY_ID)
  if (run(c, tx(c, org(c, 'auth-0'), 'study.register', s)) !== undefined) throw new Error('register failed')
  if (run(c, tx(c, org(c, 'auth-1'), 'org.kem', { kemKey: new Uint8Array(randomBytes(1184)) })) !== undefined) throw new Error('kem failed')
  return { c, s }
}

function request(
  c: TestChain,
  s: RegisterStudyPayload,
  over: Partial<{ scope: string; durationMs: number; purpose: string }> = {},
  by = 'auth-1',
): { x: Tx; id: Uint8Array } {
  const x = tx(c, org(c, by), 'lease.request', { studyId: s.studyId, scope: 'images', durationMs: 7 * DAY, purpose: 'second opinion', ...over })
  return { x, id: x.id }
}

t.test('request, consent, grant, access, expiry', async (t) => {
  const { c, s } = setup()
  t.ok(getEnvelopeKeys(c.state, 'auth-1'), 'auth-1 published its envelope key')
  t.equal(getEnvelopeKeys(c.state, 'auth-2'), undefined)
  const { x, id } = request(c, s)
  t.ok(x.bytes.length <= 512, `request: ${x.bytes.length} bytes on the ledger, signature included`)
  t.equal(run(c, x), undefined)
  const l0 = getLease(c.state, id)
  t.same([l0?.status, l0?.requester, l0?.scope], ['requested', 'auth-1', 'images'])

  const env = new Uint8Array(randomBytes(32))
  const grant = tx(c, org(c, 'auth-0'), 'lease.grant', { leaseId: id, envelope: env })
  t.equal(run(c, grant), 'TX_UNAUTHORIZED', 'no consent policy: the custodian alone cannot grant')
  t.equal(run(c, tx(c, patient, 'consent.set', policy())), undefined, 'the patient sets the study policy with its owner key')
  const g = tx(c, org(c, 'auth-0'), 'lease.grant', { leaseId: id, envelope: env })
  t.ok(g.bytes.length <= 512, `grant: ${g.bytes.length} bytes`)
  t.equal(run(c, g), undefined, 'covered by consent: granted')
  const l1 = getLease(c.state, id)
  t.equal(l1?.status, 'granted')
  t.equal(l1?.expiry, c.head.header.time + 7 * DAY, 'expiry in chain time')
  t.same(l1?.envelope, env)
  t.equal(run(c, tx(c, org(c, 'auth-0'), 'lease.grant', { leaseId: id, envelope: env })), 'TX_INVALID', 'a grant is made once (no replay)')

  const acc = tx(c, org(c, 'auth-1'), 'access.record', { leaseId: id, what: 'unwrap' })
  t.ok(acc.bytes.length <= 512, `access record: ${acc.bytes.length} bytes`)
  t.equal(run(c, acc), undefined)
  t.equal(run(c, tx(c, org(c, 'auth-2'), 'access.record', { leaseId: id, what: 'retrieve' })), 'TX_UNAUTHORIZED', 'only the lessee records access')
  t.ok(leaseActive(getLease(c.state, id) as NonNullable<typeof l1>, c.head.header.time))
  // A week later (chain time), the lease is over.
  t.equal(run(c, tx(c, org(c, 'auth-1'), 'access.record', { leaseId: id, what: 'retrieve' }), 7 * DAY), 'TX_INVALID', 'no access after expiry')
  t.notOk(leaseActive(getLease(c.state, id) as NonNullable<typeof l1>, c.head.header.time))
  t.equal(run(c, tx(c, org(c, 'auth-0'), 'lease.revoke', { leaseId: id })), 'TX_INVALID', 'an expired lease cannot be revoked')
})

t.test('who may do what', async (t) => {
  const { c, s } = setup()
  t.equal(
    run(c, tx(c, org(c, 'auth-0'), 'lease.request', { studyId: s.studyId, scope: 'images', durationMs: DAY, purpose: '' })),
    'TX_INVALID',
    'the custodian needs no lease',
  )
  t.equal(
    run(c, tx(c, stranger, 'lease.request', { studyId: s.studyId, scope: 'images', durationMs: DAY, purpose: '' })),
    'TX_UNAUTHORIZED',
    'a key that is no organization',
  )
  t.equal(
    run(c, tx(c, org(c, 'auth-1'), 'lease.request', { studyId: new Uint8Array(16), scope: 'images', durationMs: DAY, purpose: '' })),
    'TX_INVALID',
    'unknown study',
  )
  t.equal(run(c, tx(c, stranger, 'consent.set', policy({ studyId: s.studyId }))), 'TX_UNAUTHORIZED', 'a key sets no policy for a study it does not own')
  t.equal(run(c, tx(c, patient, 'consent.set', policy({ studyId: new Uint8Array(16) }))), 'TX_INVALID', 'nor for a study that does not exist')
  t.equal(run(c, tx(c, patient, 'consent.set', policy({ scopes: ['images'] }))), undefined)

  // Full scope is not covered: the patient must approve.
  const full = request(c, s, { scope: 'full' })
  t.equal(run(c, full.x), undefined)
  const env = new Uint8Array(32).fill(9)
  t.equal(run(c, tx(c, org(c, 'auth-0'), 'lease.grant', { leaseId: full.id, envelope: env })), 'TX_UNAUTHORIZED', 'not covered by consent')
  t.equal(run(c, tx(c, org(c, 'auth-2'), 'lease.approve', { leaseId: full.id })), 'TX_UNAUTHORIZED', 'only the owner approves')
  t.equal(run(c, tx(c, patient, 'lease.approve', { leaseId: full.id })), undefined)
  t.equal(
    run(c, tx(c, org(c, 'auth-2'), 'lease.grant', { leaseId: full.id, envelope: env })),
    'TX_UNAUTHORIZED',
    'a grant signed by an organization that is not the custodian',
  )
  t.equal(run(c, tx(c, org(c, 'auth-0'), 'lease.grant', { leaseId: full.id, envelope: env })), undefined, 'approved: granted')
  t.equal(run(c, tx(c, org(c, 'auth-3'), 'lease.revoke', { leaseId: full.id })), 'TX_UNAUTHORIZED', 'only custodian or owner revokes')
  t.equal(run(c, tx(c, patient, 'lease.revoke', { leaseId: full.id })), undefined, 'the patient revokes')
  t.equal(getLease(c.state, full.id)?.status, 'revoked')
  t.equal(run(c, tx(c, org(c, 'auth-1'), 'access.record', { leaseId: full.id, what: 'unwrap' })), 'TX_INVALID', 'no access under a revoked lease')

  // Denial.
  const other = request(c, s, { scope: 'images', purpose: 'research' }, 'auth-2')
  t.equal(run(c, other.x), undefined)
  t.equal(run(c, tx(c, org(c, 'auth-1'), 'lease.deny', { leaseId: other.id, reason: 'no' })), 'TX_UNAUTHORIZED')
  t.equal(run(c, tx(c, org(c, 'auth-0'), 'lease.deny', { leaseId: other.id, reason: 'not for research' })), undefined)
  t.same([getLease(c.state, other.id)?.status, getLease(c.state, other.id)?.reason], ['denied', 'not for research'])
  t.equal(run(c, tx(c, org(c, 'auth-0'), 'lease.grant', { leaseId: other.id, envelope: env })), 'TX_INVALID', 'a denied lease cannot be granted')
})

t.test('a policy names organizations, durations and purposes; a new policy replaces the old one', async (t) => {
  const { c, s } = setup()
  t.equal(run(c, tx(c, patient, 'consent.set', policy({ anyOrg: false, orgs: ['auth-1'], purposes: ['second opinion'], maxDurationMs: 10 * DAY }))), undefined)
  const env = new Uint8Array(32).fill(1)
  const cases: [string, Partial<{ scope: string; durationMs: number; purpose: string }>, string | undefined][] = [
    ['named, within limits', {}, undefined],
    ['too long', { durationMs: 11 * DAY }, 'TX_UNAUTHORIZED'],
    ['another purpose', { purpose: 'marketing' }, 'TX_UNAUTHORIZED'],
  ]
  for (const [what, over, code] of cases) {
    const r = request(c, s, over)
    t.equal(run(c, r.x), undefined)
    t.equal(run(c, tx(c, org(c, 'auth-0'), 'lease.grant', { leaseId: r.id, envelope: env })), code, what)
  }
  // A stricter policy replaces it.
  t.equal(run(c, tx(c, patient, 'consent.set', policy({ studyId: s.studyId, anyOrg: false, orgs: ['auth-3'] }))), undefined)
  const r = request(c, s)
  t.equal(run(c, r.x), undefined)
  t.equal(run(c, tx(c, org(c, 'auth-0'), 'lease.grant', { leaseId: r.id, envelope: env })), 'TX_UNAUTHORIZED', 'the new policy does not name auth-1')
})

t.test('consent is per study key: no policy for all studies, none that reaches another study', async (t) => {
  const { c } = setup()
  // A second study of the same patient, registered under another owner key (as deriveStudyOwner gives each study).
  const owner2 = testSigner('patient, second study')
  const s2 = study(owner2.publicKey)
  t.equal(run(c, tx(c, org(c, 'auth-0'), 'study.register', s2)), undefined)
  t.equal(run(c, tx(c, patient, 'consent.set', policy())), undefined, "the first study's key sets its policy")
  t.equal(run(c, tx(c, patient, 'consent.set', policy({ studyId: s2.studyId }))), 'TX_UNAUTHORIZED', "the first study's key cannot set the second's")
  const r = request(c, s2)
  t.equal(run(c, r.x), undefined)
  t.equal(
    run(c, tx(c, org(c, 'auth-0'), 'lease.grant', { leaseId: r.id, envelope: new Uint8Array(32) })),
    'TX_UNAUTHORIZED',
    'the first policy does not cover the second study',
  )
  t.equal(run(c, tx(c, owner2, 'consent.set', policy({ studyId: s2.studyId }))), undefined, "the second study's key sets its own")
  t.equal(run(c, tx(c, org(c, 'auth-0'), 'lease.grant', { leaseId: r.id, envelope: new Uint8Array(32) })), undefined)
  t.same(
    [...c.state.keys()].filter((k) => k.startsWith('ow/') || k.endsWith('/*')),
    [],
    'no per-owner count and no policy for all studies in the state',
  )
})

t.test('without an owner the custodian decides; the requester needs an envelope key', async (t) => {
  const { c, s } = setup(null)
  const r = request(c, s)
  t.equal(run(c, r.x), undefined)
  t.equal(run(c, tx(c, org(c, 'auth-0'), 'lease.grant', { leaseId: r.id, envelope: new Uint8Array(32) })), undefined)
  const r2 = request(c, s, {}, 'auth-2')
  t.equal(run(c, r2.x), undefined)
  t.equal(run(c, tx(c, org(c, 'auth-0'), 'lease.grant', { leaseId: r2.id, envelope: new Uint8Array(32) })), 'TX_INVALID', 'auth-2 published no envelope key')
})

t.test('erase: custodian and owner both sign; then a tombstone, and nothing more on the study', async (t) => {
  const { c, s } = setup()
  t.equal(run(c, tx(c, org(c, 'auth-1'), 'study.erase', { studyId: s.studyId })), 'TX_UNAUTHORIZED', 'an organization that is not the custodian')
  t.equal(run(c, tx(c, org(c, 'auth-0'), 'study.erase', { studyId: s.studyId })), undefined)
  t.ok(getStudy(c.state, s.studyId), 'one signature: not erased yet')
  t.equal(run(c, tx(c, patient, 'study.erase', { studyId: s.studyId })), undefined)
  t.equal(getStudy(c.state, s.studyId), undefined, 'erased')
  const tomb = getErased(c.state, s.studyId)
  t.equal(tomb?.erasedHeight, c.head.header.height)
  t.same(tomb?.study.contentRoot, s.contentRoot, 'the tombstone keeps what holders need to delete')
  t.equal(run(c, request(c, s).x), 'TX_INVALID', 'no lease on an erased study')
  t.equal(run(c, tx(c, org(c, 'auth-0'), 'study.register', s)), 'TX_INVALID', 'its id cannot be registered again')
  t.equal(run(c, tx(c, org(c, 'auth-0'), 'study.erase', { studyId: s.studyId })), 'TX_INVALID', 'erased once')
  const { c: c2, s: s2 } = setup(null)
  t.equal(run(c2, tx(c2, org(c2, 'auth-0'), 'study.erase', { studyId: s2.studyId })), undefined)
  t.ok(getErased(c2.state, s2.studyId), 'without an owner the custodian alone erases')
})

t.test('malformed lease payloads are refused at decode', async (t) => {
  const c = chain()
  const bad: [string, unknown][] = [
    ['lease.request', { studyId: new Uint8Array(16), scope: 'everything', durationMs: DAY, purpose: '' }],
    ['lease.request', { studyId: new Uint8Array(16), scope: 'images', durationMs: 10, purpose: '' }],
    ['lease.request', { studyId: new Uint8Array(16), scope: 'images', durationMs: DAY, purpose: 'x'.repeat(201) }],
    ['lease.grant', { leaseId: new Uint8Array(31), envelope: new Uint8Array(32) }],
    ['org.kem', { kemKey: new Uint8Array(100) }],
    ['consent.set', policy({ studyId: new Uint8Array(0) })],
  ]
  for (const [type, payload] of bad) {
    let x: Tx
    try {
      x = tx(c, org(c, 'auth-1'), type, payload)
    } catch {
      t.pass(`${type}: refused when signing`)
      continue
    }
    t.throws(() => decodeTx(x.bytes, { chainId: CHAIN_ID, maxBytes: 8192 }), { code: 'TX_MALFORMED' }, type)
  }
})

t.test("violation reports: the lessee's signed request naming a block made after its lease ended, checked by every node, once per lease", async (t) => {
  const { c, s } = setup()
  t.equal(run(c, tx(c, patient, 'consent.set', policy())), undefined)
  const { x, id } = request(c, s, { durationMs: 60_000 })
  t.equal(run(c, x), undefined)
  t.equal(run(c, tx(c, org(c, 'auth-0'), 'lease.grant', { leaseId: id, envelope: new Uint8Array(32) })), undefined)
  const lease = getLease(c.state, id) as NonNullable<ReturnType<typeof getLease>>
  const holder = org(c, 'auth-2').publicKey
  type Claim = {
    requester: string
    studyId: Uint8Array
    index: number
    leaseId: Uint8Array
    time: number
    height: number
    holder: Uint8Array
    signature: Uint8Array
  }
  const claim = (signer: Ed25519Signer, height: number, time: number, index = 0): Claim => ({
    requester: 'auth-1',
    studyId: s.studyId,
    index,
    leaseId: id,
    time,
    height,
    holder,
    signature: signer.sign(signingBytes(DOMAIN.LEASE_CHUNK_REQUEST, leaseClaimBytes(s.studyId, index, id, time, height, holder))),
  })
  // An honest request just before the end names the last block before it.
  advance(c, [], { dt: lease.expiry - c.head.header.time - 1 })
  const before = c.head.header
  t.equal(before.time, lease.expiry - 1)
  // Move chain time past the expiry.
  advance(c, [], { dt: 2000 })
  const after = c.head.header
  t.equal(blockTimeAt(c.state, after.height), after.time, 'the state keeps the time of the latest blocks')
  const report = (p: Claim, by = 'auth-2'): string | undefined => run(c, tx(c, org(c, by), 'violation.report', p))
  t.equal(report(claim(org(c, 'auth-1'), before.height, before.time)), 'TX_INVALID', 'an honest request just before the end, reported later: no violation')
  t.equal(
    report(claim(org(c, 'auth-1'), before.height, after.time + 5)),
    'TX_INVALID',
    'judged on the block it names, not on the time it states: a replayed claim stays no violation',
  )
  t.equal(report(claim(org(c, 'auth-3'), after.height, after.time)), 'TX_INVALID', 'a signature by another key is no evidence')
  t.equal(run(c, tx(c, stranger, 'violation.report', claim(org(c, 'auth-1'), after.height, after.time))), 'TX_UNAUTHORIZED', 'reported by an organization')
  t.equal(report(claim(org(c, 'auth-1'), c.head.header.height + 1, after.time)), 'TX_INVALID', 'a request naming a block not final yet')
  const forged = { ...claim(org(c, 'auth-1'), after.height, after.time), holder: org(c, 'auth-3').publicKey }
  t.equal(report(forged), 'TX_INVALID', 'the signature covers the holder asked')
  // Backdated into the lease, but naming a block after its end: a violation whatever time it states.
  const ok = tx(c, org(c, 'auth-2'), 'violation.report', claim(org(c, 'auth-1'), after.height, lease.grantedAt + 1))
  t.equal(run(c, ok), undefined, 'evidence that verifies')
  t.ok(ok.bytes.length <= 512, `violation report: ${ok.bytes.length} bytes`)
  t.ok(violationReported(c.state, id))
  t.equal(report(claim(org(c, 'auth-1'), after.height, after.time, 1), 'auth-3'), 'TX_INVALID', 'one report per lease')
})

t.test('violation reports under a revoked lease, and the limit of the block-time ring', async (t) => {
  const { c, s } = setup()
  t.equal(run(c, tx(c, patient, 'consent.set', policy())), undefined)
  const { x, id } = request(c, s, { durationMs: DAY })
  t.equal(run(c, x), undefined)
  t.equal(run(c, tx(c, org(c, 'auth-0'), 'lease.grant', { leaseId: id, envelope: new Uint8Array(32) })), undefined)
  const open = c.head.header
  t.equal(run(c, tx(c, patient, 'lease.revoke', { leaseId: id })), undefined)
  const revoked = c.head.header
  const holder = org(c, 'auth-0').publicKey
  const claim = (height: number, time: number): unknown => ({
    requester: 'auth-1',
    studyId: s.studyId,
    index: 1,
    leaseId: id,
    time,
    height,
    holder,
    signature: org(c, 'auth-1').sign(signingBytes(DOMAIN.LEASE_CHUNK_REQUEST, leaseClaimBytes(s.studyId, 1, id, time, height, holder))),
  })
  const report = (p: unknown): string | undefined => run(c, tx(c, org(c, 'auth-0'), 'violation.report', p))
  t.equal(report(claim(open.height, open.time)), 'TX_INVALID', 'a request naming a block while the lease was open')
  // Evidence naming the revocation's block, but put on the ledger too late to judge: the state keeps BLOCK_TIME_RING block times.
  for (let i = 0; i < BLOCK_TIME_RING; i++) advance(c, [])
  t.equal(blockTimeAt(c.state, revoked.height), undefined, 'the block of the revocation is out of the ring')
  t.equal(blockTimeAt(c.state, c.head.header.height - BLOCK_TIME_RING + 1), c.head.header.time - (BLOCK_TIME_RING - 1) * 1000)
  t.equal([...c.state.keys()].filter((k) => k.startsWith('bt/')).length, BLOCK_TIME_RING, 'the ring never grows')
  t.equal(report(claim(revoked.height, revoked.time)), 'TX_INVALID', 'too old to judge')
  const recent = c.head.header
  t.equal(report(claim(recent.height, open.time)), undefined, 'a request naming a block after the revocation')
})
