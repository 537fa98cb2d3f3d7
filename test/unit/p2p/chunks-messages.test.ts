import t from 'tap'
import fc from 'fast-check'
import { randomBytes } from 'node:crypto'
import { LEASE_CLAIM_BYTES, leaseClaimBytes } from '../../../src/chain/index.js'
import { LEASE_CLAIM_SIGNED_BYTES, decodeChunkRequest, encodeChunkRequest, encodeLeaseChunkRequest } from '../../../src/p2p/index.js'

t.test("a lease chunk request: the signed part is the ledger's claim bytes, and it decodes to what was encoded", async (t) => {
  t.equal(LEASE_CLAIM_SIGNED_BYTES, LEASE_CLAIM_BYTES, 'the wire and the ledger agree on the length')
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      fc.nat({ max: 0xffffffff }),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.nat({ max: Number.MAX_SAFE_INTEGER }),
      fc.nat({ max: Number.MAX_SAFE_INTEGER }),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      (studyId, index, leaseId, time, height, holder) => {
        let signed: Uint8Array | undefined
        const sig = new Uint8Array(randomBytes(64))
        const req = encodeLeaseChunkRequest(studyId, index, { leaseId, time, height, holder }, (m) => {
          signed = m
          return sig
        })
        const ledger = leaseClaimBytes(studyId, index, leaseId, time, height, holder)
        if (signed === undefined || !Buffer.from(signed).equals(ledger)) return false
        const d = decodeChunkRequest(req)
        return (
          Buffer.from(d.studyId).equals(studyId) &&
          d.index === index &&
          d.claim !== undefined &&
          Buffer.from(d.claim.leaseId).equals(leaseId) &&
          d.claim.time === time &&
          d.claim.height === height &&
          Buffer.from(d.claim.holder).equals(holder) &&
          Buffer.from(d.claim.signature).equals(sig) &&
          Buffer.from(d.claim.signed).equals(ledger)
        )
      },
    ),
  )
})

t.test('malformed chunk requests are refused and penalized', async (t) => {
  const plain = encodeChunkRequest(new Uint8Array(16), 3)
  t.same(decodeChunkRequest(plain), { studyId: new Uint8Array(16), index: 3 })
  const claim = { leaseId: new Uint8Array(32), time: 5, height: 2, holder: new Uint8Array(32) }
  const leased = encodeLeaseChunkRequest(new Uint8Array(16), 3, claim, () => new Uint8Array(64))
  t.equal(leased.length, LEASE_CLAIM_SIGNED_BYTES + 64)
  for (const b of [plain.subarray(1), leased.subarray(1), new Uint8Array([...leased, 0]), new Uint8Array(16 + 4 + 32 + 8 + 64)]) {
    t.throws(() => decodeChunkRequest(b), { name: 'SwarmError', code: 'SWARM_BAD_REQUEST', penalize: true }, `${b.length} bytes`)
  }
  // A time or height beyond 2^53 is not a chain time or a height.
  for (const at of [16 + 36, 16 + 44]) {
    const big = new Uint8Array(leased)
    big[at] = 0xff
    t.throws(() => decodeChunkRequest(big), { code: 'SWARM_BAD_REQUEST' })
  }
  t.throws(() => encodeLeaseChunkRequest(new Uint8Array(16), 0, { ...claim, holder: new Uint8Array(31) }, () => new Uint8Array(64)))
  t.throws(() => encodeLeaseChunkRequest(new Uint8Array(16), 0, { ...claim, time: -1 }, () => new Uint8Array(64)), RangeError)
})
