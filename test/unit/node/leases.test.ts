import t from 'tap'
import { randomBytes } from 'node:crypto'
import {
  getNonce,
  getServed,
  leaseClaimBytes,
  signTx,
  type LeaseRecord,
  type ServedClaim,
  type StudyRecord,
  type Tx,
  type ViolationPayload,
  getLease,
  getStudy,
  violationReported,
} from '../../../src/chain/index.js'
import { DOMAIN, generateX25519, signingBytes, type OrgKeys } from '../../../src/crypto/index.js'
import { LeasePolicy } from '../../../src/node/leases.js'
import type { ChainService } from '../../../src/node/chain-service.js'
import { nullLogger } from '../../../src/util/index.js'
import { CHAIN_ID, advance, makeChain, studyPayload, type TestChain, type TestOrg } from '../chain/fixtures.js'

const CHUNK = 4096

/** A chain with a 3-chunk study of auth-0 and a granted 60 s images lease of auth-1; the policy runs on auth-2 (a holder). */
function setup(): { c: TestChain; study: StudyRecord; lease: LeaseRecord; holder: TestOrg; lessee: TestOrg; policy: LeasePolicy; sent: Tx[] } {
  const c = makeChain({ authorities: 4, params: { chunkSize: CHUNK, maxBlockTxs: 16, maxBlockBytes: 64 * 1024, maxTxBytes: 8 * 1024, blockIntervalMs: 100 } })
  const byId = (id: string): TestOrg => c.orgs.find((o) => o.id === id) as TestOrg
  const [custodian, lessee, holder] = [byId('auth-0'), byId('auth-1'), byId('auth-2')]
  const tx = (o: TestOrg, type: string, payload: unknown): Tx =>
    signTx(o.signer, { chainId: CHAIN_ID, type, nonce: getNonce(c.state, o.signer.publicKey), payload })
  const z = (n: number): Uint8Array => new Uint8Array(32).fill(n)
  const reg = studyPayload(custodian.id, 3, CHUNK, 3 * (CHUNK + 16))
  const studyId = reg.studyId
  const must = (x: Tx): void => {
    const r = advance(c, [x])
    if (r.rejected.length > 0) throw new Error(`${x.type}: ${r.rejected[0]?.error.code}`)
  }
  must(tx(custodian, 'study.register', reg))
  must(tx(lessee, 'org.kem', { kemKey: new Uint8Array(randomBytes(1184)) }))
  const req = tx(lessee, 'lease.request', { studyId, scope: 'images', durationMs: 60_000, purpose: 'second opinion' })
  must(req)
  must(tx(custodian, 'lease.grant', { leaseId: req.id, envelope: z(6) }))
  const sent: Tx[] = []
  const chain = {
    chainId: CHAIN_ID,
    get state() {
      return c.state
    },
    head: () => c.head,
    nextNonce: (k: Uint8Array) => getNonce(c.state, k) + sent.filter((x) => Buffer.from(x.sender).equals(k)).length,
    submit: (x: Tx) => {
      sent.push(x)
    },
  } as unknown as ChainService
  const keys = { signer: holder.signer, encryption: generateX25519(), identitySeed: new Uint8Array(32) } as OrgKeys
  const policy = new LeasePolicy({ chain, keys, logger: nullLogger() })
  return {
    c,
    study: getStudy(c.state, studyId) as StudyRecord,
    lease: getLease(c.state, req.id) as LeaseRecord,
    holder,
    lessee,
    policy,
    sent,
  }
}

function claim(f: ReturnType<typeof setup>, index: number): ServedClaim {
  const h = f.c.head.header
  const signed = leaseClaimBytes(f.study.studyId, index, f.lease.leaseId, h.time, h.height, f.holder.signer.publicKey)
  return { index, time: h.time, height: h.height, signature: f.lessee.signer.sign(signingBytes(DOMAIN.LEASE_CHUNK_REQUEST, signed)) }
}

t.test("a holder's served summary: sent when the lease ends, and accepted by the ledger's rules", async (t) => {
  const f = setup()
  const now = (): number => f.c.head.header.time
  f.policy.servedObject(f.lessee.id, f.study, f.lease.envelope as Uint8Array, now())
  f.policy.servedChunk(f.lease, 0, CHUNK + 16, claim(f, 0), now())
  advance(f.c, [])
  f.policy.servedChunk(f.lease, 2, CHUNK + 16, claim(f, 2), now())
  f.policy.servedChunk(f.lease, 0, CHUNK + 16, claim(f, 0), now())
  f.policy.flushServed()
  t.equal(f.sent.length, 0, 'nothing is sent while serving goes on')
  // The lease ends in chain time: the window goes out.
  advance(f.c, [], { dt: 60_000 })
  f.policy.flushServed()
  t.equal(f.sent.length, 1, 'one summary at the end of the lease')
  const x = f.sent[0] as Tx
  t.equal(x.type, 'access.served')
  const p = x.payload as { chunks: number; bytes: number; envelope: boolean; claim: ServedClaim }
  t.same(
    [p.chunks, p.bytes, p.envelope, p.claim.index],
    [2, 2 * (CHUNK + 16), true, 2],
    'distinct chunks, their bytes, the envelope, the latest claim (by time, then index)',
  )
  t.same(advance(f.c, [x]).rejected, [], 'the ledger accepts it')
  t.same(getServed(f.c.state, f.lease.leaseId, f.holder.id), {
    summaries: 1,
    chunks: 2,
    bytes: 2 * (CHUNK + 16),
    last: (x.payload as { last: number }).last,
    claimTime: p.claim.time,
    claimIndex: 2,
  })
  f.policy.flushServed()
  t.equal(f.sent.length, 1, 'the window is gone once sent')
})

t.test('only objects served: kept until a chunk claim comes, dropped when the lease ends without one', async (t) => {
  const f = setup()
  f.policy.servedObject(f.lessee.id, f.study, f.lease.envelope as Uint8Array, f.c.head.header.time)
  f.policy.stop()
  t.equal(f.sent.length, 0, 'no summary without the lessee signature')
  advance(f.c, [], { dt: 61_000 })
  f.policy.flushServed()
  t.equal(f.sent.length, 0)
})

t.test('a violation naming a block the holder does not have yet is reported once that block is here, if it came after the end', async (t) => {
  const f = setup()
  advance(f.c, [], { dt: 61_000 })
  const head = f.c.head.header
  const at = (height: number, time: number): ViolationPayload => {
    const signed = leaseClaimBytes(f.study.studyId, 1, f.lease.leaseId, time, height, f.holder.signer.publicKey)
    return {
      requester: f.lessee.id,
      studyId: f.study.studyId,
      index: 1,
      leaseId: f.lease.leaseId,
      time,
      height,
      holder: f.holder.signer.publicKey,
      signature: f.lessee.signer.sign(signingBytes(DOMAIN.LEASE_CHUNK_REQUEST, signed)),
    }
  }
  f.policy.reportViolation(at(head.height - 3, f.lease.grantedAt))
  t.equal(f.sent.length, 0, 'a claim naming a block while the lease was open is not reported')
  f.policy.reportViolation(at(head.height + 1, f.lease.grantedAt + 1))
  t.equal(f.sent.length, 0, 'the block it names is not here yet')
  f.policy.start()
  t.teardown(() => f.policy.stop())
  advance(f.c, [])
  const deadline = Date.now() + 20_000
  while (f.sent.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
  t.equal(f.sent.length, 1, 'reported once the block is here')
  const x = f.sent[0] as Tx
  t.equal(x.type, 'violation.report')
  t.same(advance(f.c, [x]).rejected, [], 'and the ledger accepts the evidence')
  t.ok(violationReported(f.c.state, f.lease.leaseId))
})
