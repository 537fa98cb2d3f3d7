import t from 'tap'
import fc from 'fast-check'
import { decodeMessage, encodeMessage, signProposal, verifyProposal, type ConsensusMessage, type Proposal } from '../../../src/consensus/index.js'
import { CodecError, encode, encodeTrusted, signVote, u64, verifyVote, voteToWire, type Encodable, type SignedVote } from '../../../src/chain/index.js'
import { toHex } from '../../../src/util/index.js'
import { CHAIN_ID, testSigner } from '../chain/fixtures.js'

const MAX_BLOCK = 64 * 1024
const alice = testSigner('msg-alice')
const bob = testSigner('msg-bob')
const H = new Uint8Array(32).fill(0xab)
const BLOCK = new Uint8Array(500).fill(0x5a)

/** Comparable view of a message (bytes as hex). */
function view(m: ConsensusMessage): unknown {
  if (m.type === 'vote') {
    const v = m.vote
    return {
      type: 'vote',
      kind: v.kind,
      height: v.height,
      round: v.round,
      blockHash: v.blockHash === null ? null : toHex(v.blockHash),
      signer: toHex(v.signer),
      signature: toHex(v.signature),
    }
  }
  const p = m.proposal
  return {
    type: 'proposal',
    height: p.height,
    round: p.round,
    validRound: p.validRound,
    blockHash: toHex(p.blockHash),
    block: toHex(p.blockBytes),
    signer: toHex(p.signer),
    signature: toHex(p.signature),
  }
}

const proposal = (o: Partial<Omit<Proposal, 'signer' | 'signature'>> = {}): Proposal =>
  signProposal(alice, CHAIN_ID, {
    height: o.height ?? 7,
    round: o.round ?? 2,
    validRound: o.validRound ?? -1,
    blockHash: o.blockHash ?? H,
    blockBytes: o.blockBytes ?? BLOCK,
  })

t.test('proposal encode/decode round trip, validRound -1 and >= 0', async (t) => {
  const cases: [string, Proposal][] = [
    ['validRound -1 (a fresh proposal)', proposal({ validRound: -1 })],
    ['validRound 0', proposal({ round: 3, validRound: 0 })],
    ['validRound 5 at round 6', proposal({ round: 6, validRound: 5 })],
    ['round and validRound at the u32 edge', proposal({ round: 0xffffffff, validRound: 0xfffffffe })],
    ['height above 2^32', proposal({ height: 2 ** 40 + 3 })],
    ['height 2^53 - 1', proposal({ height: Number.MAX_SAFE_INTEGER })],
    ['an empty block body', proposal({ blockBytes: new Uint8Array(0) })],
    ['a block of exactly the size limit', proposal({ blockBytes: new Uint8Array(MAX_BLOCK).fill(1) })],
  ]
  for (const [what, p] of cases) {
    const m: ConsensusMessage = { type: 'proposal', proposal: p }
    const bytes = encodeMessage(m)
    const back = decodeMessage(bytes, MAX_BLOCK)
    t.same(view(back), view(m), `${what}: same fields`)
    t.equal(toHex(encodeMessage(back)), toHex(bytes), `${what}: re-encodes to the same bytes`)
    t.ok(back.type === 'proposal' && verifyProposal(back.proposal, CHAIN_ID), `${what}: the decoded proposal verifies`)
  }
})

t.test('the wire writes validRound + 1 so every field is unsigned', async (t) => {
  const p = proposal({ round: 4, validRound: -1 })
  const wire = encodeTrusted(['proposal', u64(p.height), p.round, 0, p.blockHash, p.blockBytes, p.signer, p.signature])
  t.equal(toHex(encodeMessage({ type: 'proposal', proposal: p })), toHex(wire), 'validRound -1 is written as 0')
  const p2 = proposal({ round: 4, validRound: 2 })
  const back = decodeMessage(encodeTrusted(['proposal', u64(p2.height), p2.round, 3, p2.blockHash, p2.blockBytes, p2.signer, p2.signature]), MAX_BLOCK)
  t.equal(back.type === 'proposal' ? back.proposal.validRound : NaN, 2, 'wire 3 reads as validRound 2')
})

t.test('vote encode/decode round trip', async (t) => {
  const votes: [string, SignedVote][] = [
    ['prevote for a block', signVote(alice, CHAIN_ID, 'prevote', 5, 0, H)],
    ['prevote for nil', signVote(alice, CHAIN_ID, 'prevote', 5, 1, null)],
    ['precommit for a block', signVote(bob, CHAIN_ID, 'precommit', 2 ** 40, 0xffffffff, H)],
    ['precommit for nil', signVote(bob, CHAIN_ID, 'precommit', 1, 0, null)],
  ]
  for (const [what, v] of votes) {
    const m: ConsensusMessage = { type: 'vote', vote: v }
    const bytes = encodeMessage(m)
    const back = decodeMessage(bytes, MAX_BLOCK)
    t.same(view(back), view(m), `${what}: same fields`)
    t.equal(toHex(encodeMessage(back)), toHex(bytes), `${what}: same bytes again`)
    t.ok(back.type === 'vote' && verifyVote(back.vote, CHAIN_ID), `${what}: the decoded vote verifies`)
  }
})

t.test('verifyProposal: true for the signed proposal, false after any change to a signed field', async (t) => {
  const p = proposal({ round: 3, validRound: 1 })
  t.ok(verifyProposal(p, CHAIN_ID), 'the proposal as signed verifies')
  const flipped = (b: Uint8Array, i = 0): Uint8Array => {
    const c = Uint8Array.from(b)
    c[i] = (c[i] as number) ^ 0x01
    return c
  }
  const changes: [string, Proposal][] = [
    ['height + 1', { ...p, height: p.height + 1 }],
    ['round + 1', { ...p, round: p.round + 1 }],
    ['round - 1', { ...p, round: p.round - 1 }],
    ['validRound + 1', { ...p, validRound: p.validRound + 1 }],
    ['validRound -1 instead of 1', { ...p, validRound: -1 }],
    ['one bit of the block hash', { ...p, blockHash: flipped(p.blockHash, 31) }],
    ['the signer: another key', { ...p, signer: bob.publicKey }],
    ['one bit of the signature (R)', { ...p, signature: flipped(p.signature, 0) }],
    ['one bit of the signature (S)', { ...p, signature: flipped(p.signature, 40) }],
  ]
  for (const [what, q] of changes) t.notOk(verifyProposal(q, CHAIN_ID), `${what}: does not verify`)
  t.notOk(verifyProposal(p, 'radchain-other'), 'another chain id: does not verify')
  // Same (height, round, validRound, hash) signed by bob verifies only under bob's key.
  const byBob = signProposal(bob, CHAIN_ID, p)
  t.ok(verifyProposal(byBob, CHAIN_ID), 'bob signing the same fields verifies as bob')
  t.notOk(verifyProposal({ ...byBob, signature: p.signature }, CHAIN_ID), "alice's signature does not verify under bob's key")
  // validRound -1 and 0 must not collide after the +1 shift.
  const fresh = proposal({ round: 3, validRound: -1 })
  t.notOk(verifyProposal({ ...fresh, validRound: 0 }, CHAIN_ID), 'validRound -1 signed, 0 claimed: does not verify')
  // The block bytes are not signed: they are bound to the signed hash by the engine
  // (decoded block's header hash must equal blockHash), not by this signature.
  t.ok(verifyProposal({ ...p, blockBytes: new Uint8Array(3) }, CHAIN_ID), 'blockBytes are outside the signature (bound by blockHash)')
})

t.test('a vote signature is bound to every vote field', async (t) => {
  const v = signVote(alice, CHAIN_ID, 'prevote', 9, 2, H)
  t.ok(verifyVote(v, CHAIN_ID), 'verifies as signed')
  const changes: [string, SignedVote][] = [
    ['kind', { ...v, kind: 'precommit' }],
    ['height', { ...v, height: 10 }],
    ['round', { ...v, round: 3 }],
    ['block hash to nil', { ...v, blockHash: null }],
    ['signer', { ...v, signer: bob.publicKey }],
  ]
  for (const [what, w] of changes) t.notOk(verifyVote(w, CHAIN_ID), `${what} changed: does not verify`)
  t.notOk(
    verifyVote({ ...signVote(alice, CHAIN_ID, 'prevote', 9, 2, null), blockHash: new Uint8Array(32) }, CHAIN_ID),
    'nil signed, a zero hash claimed: does not verify',
  )
})

t.test('decodeMessage rejects malformed messages with CodecError', async (t) => {
  const p = proposal()
  const v = signVote(alice, CHAIN_ID, 'prevote', 5, 0, H)
  const pw = (o: Partial<Record<number, Encodable>> = {}, len = 8): Uint8Array => {
    const base: Encodable[] = ['proposal', u64(p.height), p.round, p.validRound + 1, p.blockHash, p.blockBytes, p.signer, p.signature]
    for (const [i, x] of Object.entries(o)) base[Number(i)] = x as Encodable
    return encode(base.slice(0, len))
  }
  const vw = (o: Partial<Record<number, Encodable>> = {}): Uint8Array => {
    const w = [...(voteToWire(v) as Encodable[])]
    for (const [i, x] of Object.entries(o)) w[Number(i)] = x as Encodable
    return encode(['vote', w])
  }
  const cases: [string, Uint8Array][] = [
    ['empty input', new Uint8Array(0)],
    ['a bare string', encode('vote')],
    ['an unknown tag', encode(['block', 1])],
    ['a tag that is not a string', encode([1, 2, 3])],
    ['an empty array', encode([])],
    ['a vote message with three fields', encode(['vote', voteToWire(v), 1])],
    ['a vote with a 31-byte hash', vw({ 3: new Uint8Array(31) })],
    ['a vote with a 33-byte hash', vw({ 3: new Uint8Array(33) })],
    ['a vote of an unknown kind', vw({ 0: 'commit' })],
    ['a vote height as a 32-bit number instead of u64', vw({ 1: 5 })],
    ['a vote round that is negative', vw({ 2: -1 })],
    ['a vote with a short signature', vw({ 5: new Uint8Array(63) })],
    ['a vote with a 31-byte signer', vw({ 4: new Uint8Array(31) })],
    ['a proposal with seven fields', pw({}, 7)],
    ['a proposal height as a 32-bit number', pw({ 1: 7 })],
    ['a negative proposal height', pw({ 1: -1n })],
    ['a proposal height above 2^53', pw({ 1: 2n ** 60n })],
    ['a proposal round as bigint', pw({ 2: 2n })],
    ['a negative wire validRound', pw({ 3: -1 })],
    ['a proposal block hash of 31 bytes', pw({ 4: new Uint8Array(31) })],
    ['a proposal block that is a string', pw({ 5: 'block' })],
    ['a proposal block one byte over the limit', pw({ 5: new Uint8Array(MAX_BLOCK + 1) })],
    ['a proposal signer of 33 bytes', pw({ 6: new Uint8Array(33) })],
    ['a proposal with a 65-byte signature', pw({ 7: new Uint8Array(65) })],
    ['a non-canonical integer (0 written as uint8)', Uint8Array.from([0x92, 0xa4, ...Buffer.from('vote'), 0xcc, 0x00])],
    ['trailing bytes after a whole message', Uint8Array.from([...encodeMessage({ type: 'vote', vote: v }), 0x00])],
    ['a msgpack map', Uint8Array.from([0x81, 0xa4, ...Buffer.from('vote'), 0x01])],
    ['a float', Uint8Array.from([0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0])],
  ]
  for (const [what, bytes] of cases) t.throws(() => decodeMessage(bytes, MAX_BLOCK), { name: 'CodecError' }, what)
  t.throws(
    () => decodeMessage(encodeMessage({ type: 'proposal', proposal: proposal({ blockBytes: new Uint8Array(1000) }) }), 999),
    { name: 'CodecError' },
    "the block bound is the caller's maxBlockBytes",
  )
})

/** decodeMessage either returns a message that re-encodes to `bytes`, or throws CodecError. */
function decodesCanonicallyOrCodecError(bytes: Uint8Array): boolean {
  let m: ConsensusMessage
  try {
    m = decodeMessage(bytes, MAX_BLOCK)
  } catch (err) {
    if (err instanceof CodecError) return true
    throw err
  }
  return toHex(encodeMessage(m)) === toHex(bytes)
}

t.test('property: random bytes never throw anything but CodecError', async (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), decodesCanonicallyOrCodecError), { numRuns: 3000 })
  t.pass('3000 random byte strings')
})

t.test('property: random msgpack values under a message tag never throw anything but CodecError', async (t) => {
  const leaf: fc.Arbitrary<Encodable> = fc.oneof(
    fc.constant(null),
    fc.boolean(),
    fc.integer({ min: -0x80000000, max: 0xffffffff }),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
    fc.constantFrom('vote', 'proposal', 'prevote', 'precommit', ''),
    fc.string({ maxLength: 10 }),
    fc.uint8Array({ maxLength: 70 }),
    fc.constantFrom(new Uint8Array(32), new Uint8Array(64), new Uint8Array(0)),
  )
  const value: fc.Arbitrary<Encodable> = fc.letrec<{ v: Encodable }>((tie) => ({
    v: fc.oneof({ depthSize: 'small' }, leaf, fc.array(tie('v'), { maxLength: 8 })),
  })).v
  const message = fc.oneof(
    fc.tuple(fc.constant('vote'), value).map((x): Encodable => x),
    fc.tuple(fc.constant('vote'), fc.tuple(fc.constantFrom('prevote', 'precommit', 'x'), value, value, value, value, value)).map((x): Encodable => x),
    fc.array(value, { maxLength: 9 }).map((a): Encodable => ['proposal', ...a]),
    value,
  )
  fc.assert(
    fc.property(message, (m) => decodesCanonicallyOrCodecError(encode(m))),
    { numRuns: 3000 },
  )
  t.pass('3000 random structured messages')
})

t.test('property: valid messages with random byte edits decode canonically or fail with CodecError', async (t) => {
  const good = [
    encodeMessage({ type: 'proposal', proposal: proposal({ blockBytes: new Uint8Array(40).fill(3) }) }),
    encodeMessage({ type: 'proposal', proposal: proposal({ validRound: 4, round: 9 }) }),
    encodeMessage({ type: 'vote', vote: signVote(alice, CHAIN_ID, 'precommit', 3, 1, H) }),
    encodeMessage({ type: 'vote', vote: signVote(alice, CHAIN_ID, 'prevote', 3, 1, null) }),
  ]
  const edit = fc.record({
    which: fc.nat({ max: good.length - 1 }),
    edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
    cut: fc.option(fc.nat(), { nil: undefined }),
  })
  fc.assert(
    fc.property(edit, ({ which, edits, cut }) => {
      const b = Uint8Array.from(good[which] as Uint8Array)
      for (const [i, x] of edits) b[i % b.length] = x
      return decodesCanonicallyOrCodecError(cut === undefined ? b : b.subarray(0, cut % (b.length + 1)))
    }),
    { numRuns: 3000 },
  )
  t.pass('3000 edited messages')
})
