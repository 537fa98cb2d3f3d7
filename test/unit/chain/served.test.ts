import t from 'tap'
import { randomBytes } from 'node:crypto'
import {
  claimWindowMs,
  decodeTx,
  getLease,
  getNonce,
  getParams,
  getServed,
  leaseClaimBytes,
  signTx,
  type RegisterStudyPayload,
  type ServedPayload,
  type Tx,
} from '../../../src/chain/index.js'
import { DOMAIN, signingBytes, type Ed25519Signer } from '../../../src/crypto/index.js'
import { CHAIN_ID, advance, makeChain, studyPayload, testSigner, type TestChain } from './fixtures.js'

const CHUNK = 4096
const HOUR = 3600_000

const org = (c: TestChain, id: string): Ed25519Signer => (c.orgs.find((o) => o.id === id) as { signer: Ed25519Signer }).signer

function tx(c: TestChain, signer: Ed25519Signer, type: string, payload: unknown): Tx {
  return signTx(signer, { chainId: CHAIN_ID, type, nonce: getNonce(c.state, signer.publicKey), payload })
}

/** Applies one transaction in its own block (dt ms after the head); returns its error code, or undefined when it was accepted. */
function run(c: TestChain, x: Tx, dt = 1000): string | undefined {
  return advance(c, [x], { dt }).rejected[0]?.error.code
}

/** A chain with a 3-chunk study of auth-0 (no owner) and an images lease of auth-1 on it, granted; returns the lease id. */
function setup(): { c: TestChain; s: RegisterStudyPayload; leaseId: Uint8Array } {
  const c = makeChain({ authorities: 4, params: { chunkSize: CHUNK, maxBlockTxs: 16, maxBlockBytes: 64 * 1024, maxTxBytes: 8 * 1024, blockIntervalMs: 100 } })
  const z = (n: number): Uint8Array => new Uint8Array(32).fill(n)
  const s = studyPayload('auth-0', 3, CHUNK, 3 * (CHUNK + 16))
  const must = (code: string | undefined, what: string): void => {
    if (code !== undefined) throw new Error(`${what}: ${code}`)
  }
  must(run(c, tx(c, org(c, 'auth-0'), 'study.register', s)), 'register')
  must(run(c, tx(c, org(c, 'auth-1'), 'org.kem', { kemKey: new Uint8Array(randomBytes(1184)) })), 'kem')
  const req = tx(c, org(c, 'auth-1'), 'lease.request', { studyId: s.studyId, scope: 'images', durationMs: HOUR, purpose: 'second opinion' })
  must(run(c, req), 'request')
  must(run(c, tx(c, org(c, 'auth-0'), 'lease.grant', { leaseId: req.id, envelope: z(6) })), 'grant')
  return { c, s, leaseId: req.id }
}

t.test("access.served: a holder's summary backed by the lessee's claim, bounded by the study, windows in order", async (t) => {
  const { c, s, leaseId } = setup()
  const lease = getLease(c.state, leaseId) as NonNullable<ReturnType<typeof getLease>>
  const t0 = c.head.header
  const claimFor = (holder: string, index: number, time = t0.time, height = t0.height, signer = org(c, 'auth-1')): ServedPayload['claim'] => ({
    index,
    time,
    height,
    signature: signer.sign(signingBytes(DOMAIN.LEASE_CHUNK_REQUEST, leaseClaimBytes(s.studyId, index, leaseId, time, height, org(c, holder).publicKey))),
  })
  const summary = (over: Partial<ServedPayload> = {}): ServedPayload => ({
    leaseId,
    first: t0.time,
    last: t0.time,
    chunks: 3,
    bytes: 3 * (CHUNK + 16),
    envelope: true,
    demographics: false,
    claim: claimFor('auth-2', 2),
    ...over,
  })
  const by = (id: string, p: ServedPayload): string | undefined => run(c, tx(c, org(c, id), 'access.served', p))

  t.equal(by('auth-3', summary()), 'TX_UNAUTHORIZED', 'a claim the lessee made to another holder: the sender was not asked')
  t.equal(by('auth-2', summary({ claim: claimFor('auth-2', 2, t0.time, t0.height, org(c, 'auth-3')) })), 'TX_UNAUTHORIZED', 'a claim not signed by the lessee')
  t.equal(by('auth-1', summary({ claim: claimFor('auth-1', 2) })), 'TX_UNAUTHORIZED', 'the lessee records nothing served to itself')
  t.equal(run(c, tx(c, testSigner('stranger'), 'access.served', summary())), 'TX_UNAUTHORIZED', 'not an admitted organization')
  t.equal(by('auth-2', summary({ chunks: 4 })), 'TX_INVALID', 'more distinct chunks than the study has')
  t.equal(by('auth-2', summary({ bytes: 3 * (CHUNK + 16) + 1 })), 'TX_INVALID', "more bytes than the study's ciphertext")
  t.equal(by('auth-2', summary({ chunks: 0, bytes: 0, envelope: false })), 'TX_INVALID', 'an empty summary')
  t.equal(by('auth-2', summary({ demographics: true })), 'TX_INVALID', 'the demographics record under an images lease')
  t.equal(by('auth-2', summary({ first: lease.grantedAt - 1 })), 'TX_INVALID', 'a window that starts before the grant')
  t.equal(by('auth-2', summary({ last: c.head.header.time + 5000 })), 'TX_INVALID', 'a window that ends after the block')
  t.equal(by('auth-2', summary({ first: t0.time + 10, last: t0.time })), 'TX_INVALID', 'a window that ends before it starts')
  const w = claimWindowMs(getParams(c.state))
  t.equal(by('auth-2', summary({ claim: claimFor('auth-2', 2, t0.time - w - 1) })), 'TX_INVALID', 'a claim dated outside the window')

  const first = tx(c, org(c, 'auth-2'), 'access.served', summary())
  t.ok(first.bytes.length <= 512, `served summary: ${first.bytes.length} bytes on the ledger`)
  t.equal(run(c, first), undefined, 'a summary that checks')
  t.same(getServed(c.state, leaseId, 'auth-2'), { summaries: 1, chunks: 3, bytes: 3 * (CHUNK + 16), last: t0.time, claimTime: t0.time, claimIndex: 2 })
  t.equal(by('auth-2', summary({ envelope: false, chunks: 1, bytes: CHUNK + 16 })), 'TX_INVALID', 'the same claim again: no second summary from one request')
  t.equal(by('auth-2', summary({ claim: claimFor('auth-2', 1) })), 'TX_INVALID', 'an earlier claim')

  // Serving resumes: a later window with a later claim.
  const t1 = c.head.header
  t.equal(
    by('auth-2', summary({ first: t0.time - 1, last: t1.time, claim: claimFor('auth-2', 0, t1.time, t1.height) })),
    'TX_INVALID',
    'a window overlapping the previous one',
  )
  t.equal(
    by('auth-2', summary({ first: t1.time, last: t1.time, chunks: 1, bytes: CHUNK + 16, envelope: false, claim: claimFor('auth-2', 0, t1.time, t1.height) })),
    undefined,
  )
  t.same(getServed(c.state, leaseId, 'auth-2'), { summaries: 2, chunks: 4, bytes: 4 * (CHUNK + 16), last: t1.time, claimTime: t1.time, claimIndex: 0 })
  t.equal(getServed(c.state, leaseId, 'auth-3'), undefined)

  // The custodian records its own; after the lease has ended, a window past the end is refused.
  t.equal(by('auth-0', summary({ claim: claimFor('auth-0', 1) })), undefined, 'the custodian, asked by the lessee')
  const end = lease.expiry
  advance(c, [], { dt: end - c.head.header.time + 1000 })
  const late = c.head.header
  t.equal(
    by('auth-3', summary({ first: late.time, last: late.time, claim: claimFor('auth-3', 1, late.time, late.height) })),
    'TX_INVALID',
    'the lease was not open',
  )
})

t.test('access.served payloads of the wrong shape are refused at decode', async (t) => {
  const { c, leaseId } = setup()
  const good = {
    leaseId,
    first: 1,
    last: 2,
    chunks: 1,
    bytes: 10,
    envelope: false,
    demographics: false,
    claim: { index: 0, time: 1, height: 1, signature: new Uint8Array(64) },
  }
  const bad: unknown[] = [
    { ...good, leaseId: new Uint8Array(31) },
    { ...good, claim: { ...good.claim, signature: new Uint8Array(63) } },
    { ...good, chunks: 2 ** 32 },
  ]
  for (const payload of bad) {
    let x: Tx
    try {
      x = tx(c, org(c, 'auth-2'), 'access.served', payload)
    } catch {
      t.pass('refused when signing')
      continue
    }
    t.throws(() => decodeTx(x.bytes, { chainId: CHAIN_ID, maxBytes: 8192 }), { code: 'TX_MALFORMED' })
  }
  const ok = tx(c, org(c, 'auth-2'), 'access.served', good)
  t.same(decodeTx(ok.bytes, { chainId: CHAIN_ID, maxBytes: 8192 }).payload, good, 'the good shape decodes to itself')
})
