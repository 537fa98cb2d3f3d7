import t from 'tap'
import { DOMAIN, signingBytes, type Ed25519Signer } from '../../../src/crypto/index.js'
import { toHex } from '../../../src/util/index.js'
import {
  checkTx,
  decodeCanonical,
  decodeTx,
  encode,
  evidenceTx,
  getNonce,
  signTx,
  signVote,
  txToJSON,
  u64,
  verifyVote,
  voteFromWire,
  voteToWire,
  type Encodable,
  type EvidencePayload,
  type OrgAction,
  type SignedVote,
  type Tx,
  type VoteKind,
} from '../../../src/chain/index.js'
import { CHAIN_ID, advance, codeOf, makeChain, testSigner, vote, type TestChain } from './fixtures.js'

const reporter = testSigner('evidence-reporter')
const X = new Uint8Array(32).fill(0x11)
const Y = new Uint8Array(32).fill(0x22)

interface VoteOver {
  kind?: VoteKind
  height?: number
  round?: number
  chainId?: string
}
const voteBy = (s: Ed25519Signer, hash: Uint8Array | null, o: VoteOver = {}): SignedVote =>
  signVote(s, o.chainId ?? CHAIN_ID, o.kind ?? 'precommit', o.height ?? 1, o.round ?? 0, hash)

/** An evidence transaction from `sender` at its next nonce (plus `offset`). */
const evidence = (c: TestChain, a: SignedVote, b: SignedVote, offset = 0, sender: Ed25519Signer = reporter): Tx<EvidencePayload> =>
  signTx(sender, { chainId: CHAIN_ID, type: 'evidence', nonce: getNonce(c.state, sender.publicKey) + offset, payload: { a, b } })

/** A chain of four authorities and a member, at height 2. */
function chain(): TestChain {
  const c = makeChain({ authorities: 4, members: 1 })
  advance(c, [])
  advance(c, [])
  return c
}
const authority = (c: TestChain, i: number): Ed25519Signer => {
  const a = c.authorities[i]
  if (a === undefined) throw new Error(`no authority ${i}`)
  return a.signer
}
const evKey = (v: SignedVote): string => `ev/${toHex(v.signer)}/${v.height}/${v.round}/${v.kind}`

t.test('two conflicting precommits from an authority at (h, r): accepted and recorded once', async (t) => {
  const c = chain()
  const a1 = authority(c, 1)
  const a = voteBy(a1, X)
  const b = voteBy(a1, Y)
  const tx = evidence(c, a, b)
  t.equal(
    codeOf(() => checkTx(c.state, c.head, tx)),
    undefined,
    'checkTx accepts it',
  )
  const r = advance(c, [tx, evidence(c, a, b, 1)])
  t.same(
    r.block.txs.map((x) => toHex(x.id)),
    [toHex(tx.id)],
    'included in a block',
  )
  t.same(
    r.rejected.map((x) => x.error.code),
    ['TX_INVALID'],
    'the same equivocation again in the same block: TX_INVALID',
  )
  t.equal(toHex(c.state.get(evKey(a)) ?? new Uint8Array(0)), toHex(tx.id), 'recorded under (signer, height, round, kind), pointing at the transaction')
  t.equal([...c.state.keys()].filter((k) => k.startsWith('ev/')).length, 1, 'one record')

  t.equal(
    codeOf(() => checkTx(c.state, c.head, evidence(c, a, b))),
    'TX_INVALID',
    'identical evidence in a later block',
  )
  t.equal(
    codeOf(() => checkTx(c.state, c.head, evidence(c, b, a))),
    'TX_INVALID',
    'the same pair swapped',
  )
  t.equal(
    codeOf(() => checkTx(c.state, c.head, evidence(c, a, voteBy(a1, null)))),
    'TX_INVALID',
    'another conflicting pair for the same (signer, h, r, kind)',
  )

  // Other equivocations are recorded separately.
  const prevotes = evidence(c, voteBy(a1, X, { kind: 'prevote' }), voteBy(a1, null, { kind: 'prevote' }))
  const otherRound = evidence(c, voteBy(a1, X, { round: 1 }), voteBy(a1, Y, { round: 1 }), 1)
  const otherSigner = evidence(c, voteBy(authority(c, 2), X), voteBy(authority(c, 2), Y), 2)
  const atHeight2 = evidence(c, voteBy(a1, X, { height: 2 }), voteBy(a1, Y, { height: 2 }), 3)
  const r2 = advance(c, [prevotes, otherRound, otherSigner, atHeight2])
  t.same(
    r2.rejected.map((x) => x.error.code),
    [],
    'prevotes (block vs nil), another round, another authority, another height: all accepted',
  )
  t.equal([...c.state.keys()].filter((k) => k.startsWith('ev/')).length, 5, 'five records')
})

t.test('refused evidence: TX_INVALID, and a refused one does not use its nonce', async (t) => {
  const c = chain()
  const a1 = authority(c, 1)
  const a2 = authority(c, 2)
  const member = c.orgs.find((o) => o.role === 'member')
  if (member === undefined) throw new Error('no member')
  const stranger = testSigner('evidence-stranger')
  const flip = (v: SignedVote): SignedVote => {
    const sig = new Uint8Array(v.signature)
    sig[7] = (sig[7] as number) ^ 0x10
    return { ...v, signature: sig }
  }
  const h = c.head.header.height
  const cases: [SignedVote, SignedVote, string][] = [
    [voteBy(a1, X), voteBy(a1, X), 'the same vote twice (no conflict)'],
    [voteBy(a1, null), voteBy(a1, null), 'two nil votes (no conflict)'],
    [voteBy(a1, X, { round: 0 }), voteBy(a1, Y, { round: 1 }), 'different rounds'],
    [voteBy(a1, X, { height: 1 }), voteBy(a1, Y, { height: 2 }), 'different heights'],
    [voteBy(a1, X, { kind: 'prevote' }), voteBy(a1, Y, { kind: 'precommit' }), 'a prevote and a precommit'],
    [voteBy(a1, X), voteBy(a2, Y), 'different signers'],
    [voteBy(member.signer, X), voteBy(member.signer, Y), 'a member, not an authority'],
    [voteBy(stranger, X), voteBy(stranger, Y), 'an unknown key'],
    [voteBy(a1, X), flip(voteBy(a1, Y)), 'a bad signature on b'],
    [flip(voteBy(a1, X)), voteBy(a1, Y), 'a bad signature on a'],
    [voteBy(a1, X), { ...voteBy(a1, Y), signer: a2.publicKey }, 'b signed by another key than it names'],
    [voteBy(a1, X), voteBy(a1, Y, { chainId: 'other-chain' }), 'b signed for another chain'],
    [{ ...voteBy(a1, X), round: 5 }, { ...voteBy(a1, Y), round: 5 }, 'round changed after signing'],
    [voteBy(a1, X, { height: h + 1 }), voteBy(a1, Y, { height: h + 1 }), 'the height of the block being built (not yet reached)'],
    [voteBy(a1, X, { height: h + 100 }), voteBy(a1, Y, { height: h + 100 }), 'a future height'],
  ]
  for (const [a, b, what] of cases)
    t.equal(
      codeOf(() => checkTx(c.state, c.head, evidence(c, a, b))),
      'TX_INVALID',
      what,
    )
  const nonce = getNonce(c.state, reporter.publicKey)
  const r = advance(
    c,
    cases.map(([a, b]) => evidence(c, a, b)),
  )
  t.equal(r.block.txs.length, 0, 'none is included by buildBlock')
  t.same(
    r.rejected.map((x) => x.error.code),
    cases.map(() => 'TX_INVALID'),
  )
  t.equal(getNonce(c.state, reporter.publicKey), nonce, "the reporter's nonce is not used")
  t.notOk(
    [...c.state.keys()].some((k) => k.startsWith('ev/')),
    'nothing recorded',
  )
  t.equal(
    codeOf(() => checkTx(c.state, c.head, evidence(c, voteBy(a1, X, { height: h }), voteBy(a1, Y, { height: h })))),
    undefined,
    "while the same pair at the parent's height is accepted",
  )
})

t.test('SignedVote: sign/verify, wire round trip, evidence transaction round trip', async (t) => {
  const s = testSigner('vote-signer')
  const votes: SignedVote[] = [
    voteBy(s, X),
    voteBy(s, null, { kind: 'prevote' }),
    voteBy(s, Y, { height: 2 ** 40 + 1, round: 7 }),
    voteBy(s, null, { height: 0, round: 0xffffffff }),
  ]
  const hexVote = (v: SignedVote): unknown => ({
    ...v,
    blockHash: v.blockHash === null ? null : toHex(v.blockHash),
    signer: toHex(v.signer),
    signature: toHex(v.signature),
  })
  for (const v of votes) {
    const what = `${v.kind} h=${v.height} r=${v.round} ${v.blockHash === null ? 'nil' : 'block'}`
    t.ok(verifyVote(v, CHAIN_ID), `${what}: verifies`)
    t.notOk(verifyVote(v, 'other-chain'), `${what}: not for another chain`)
    t.notOk(verifyVote({ ...v, blockHash: v.blockHash === null ? X : null }, CHAIN_ID), `${what}: not for another value`)
    const bytes = encode(voteToWire(v))
    const d = voteFromWire(decodeCanonical(bytes))
    t.same(hexVote(d), hexVote(v), `${what}: round trip`)
    t.equal(toHex(encode(voteToWire(d))), toHex(bytes), `${what}: re-encodes to the same bytes`)
  }
  const nilWire = voteToWire(voteBy(s, null)) as readonly unknown[]
  t.ok(nilWire[3] instanceof Uint8Array && nilWire[3].length === 0, 'nil is empty bytes on the wire')
  // Signed over VOTE tag || [chainId, kind, height, round, hash or empty].
  const v0 = votes[0] as SignedVote
  t.equal(toHex(v0.signature), toHex(s.sign(signingBytes(DOMAIN.VOTE, encode([CHAIN_ID, 'precommit', 1n, 0, X])))), 'the signed bytes')

  const c = chain()
  const a1 = authority(c, 1)
  const tx = evidence(c, voteBy(a1, X, { round: 2 }), voteBy(a1, null, { round: 2 }))
  const d = decodeTx(tx.bytes, { chainId: CHAIN_ID, maxBytes: 8192 })
  t.equal(d.type, 'evidence')
  const p = d.payload as EvidencePayload
  t.same([hexVote(p.a), hexVote(p.b)], [hexVote(tx.payload.a), hexVote(tx.payload.b)], 'the evidence payload round-trips through decodeTx')
  t.equal(toHex(d.id), toHex(tx.id))
  t.same(evidenceTx.toJSON(p), { signer: toHex(a1.publicKey), kind: 'precommit', height: 1, round: 2, blockHashes: [toHex(X), null] })
  t.match(txToJSON(d), { type: 'evidence' })
})

t.test('voteFromWire rejects bad shapes with CodecError; an evidence transaction holding one is TX_MALFORMED', async (t) => {
  const s = testSigner('vote-signer')
  const good = voteToWire(voteBy(s, X)) as unknown[]
  const bad = { name: 'CodecError' }
  const at = (i: number, x: unknown): unknown[] => good.map((y, j) => (j === i ? x : y))
  const cases: [unknown, string][] = [
    ['vote', 'not an array'],
    [good.slice(0, 5), 'five fields'],
    [[...good, 0], 'seven fields'],
    [at(0, 'commit'), 'unknown kind'],
    [at(0, 1), 'kind not a string'],
    [at(1, 1), 'height as a plain number'],
    [at(1, -1n), 'negative height'],
    [at(1, 2n ** 60n), 'height above 2^53'],
    [at(2, -1), 'negative round'],
    [at(2, 0x100000000), 'round above 2^32 - 1'],
    [at(2, 1.5), 'fractional round'],
    [at(2, 0n), 'round as a bigint'],
    [at(3, new Uint8Array(31)), 'block hash of 31 bytes'],
    [at(3, new Uint8Array(33)), 'block hash of 33 bytes'],
    [at(3, null), 'block hash null instead of empty bytes'],
    [at(3, 'hash'), 'block hash as a string'],
    [at(4, new Uint8Array(31)), 'signer of 31 bytes'],
    [at(4, new Uint8Array(33)), 'signer of 33 bytes'],
    [at(5, new Uint8Array(63)), 'signature of 63 bytes'],
    [at(5, new Uint8Array(65)), 'signature of 65 bytes'],
  ]
  for (const [x, what] of cases) t.throws(() => voteFromWire(x), bad, what)
  t.doesNotThrow(() => voteFromWire(good), 'the untouched vote passes')
  t.doesNotThrow(() => voteFromWire(at(3, new Uint8Array(0))), 'empty bytes: a nil vote')

  // The same shapes inside a signed evidence transaction.
  const sign = (payload: unknown[]): Uint8Array => {
    const body = encode([CHAIN_ID, 'evidence', reporter.publicKey, u64(0), payload as Encodable])
    return encode([body, reporter.sign(signingBytes(DOMAIN.TX_SIGN, body))])
  }
  t.equal(
    codeOf(() => decodeTx(sign([good, good]), { chainId: CHAIN_ID, maxBytes: 8192 })),
    undefined,
    'a well-formed (if useless) evidence decodes',
  )
  t.equal(
    codeOf(() => decodeTx(sign([good, at(3, new Uint8Array(31))]), { chainId: CHAIN_ID, maxBytes: 8192 })),
    'TX_MALFORMED',
    'a malformed vote inside',
  )
  t.equal(
    codeOf(() => decodeTx(sign([good]), { chainId: CHAIN_ID, maxBytes: 8192 })),
    'TX_MALFORMED',
    'one vote only',
  )
  t.equal(
    codeOf(() => decodeTx(sign([good, good, good]), { chainId: CHAIN_ID, maxBytes: 8192 })),
    'TX_MALFORMED',
    'three votes',
  )
})

// Found while writing these tests; see the report. evidence.ts checks the
// signer against authoritySet(ctx.state), which includes changes made by
// earlier transactions of the same block, while every other rule (org votes,
// the header's authoritySetHash, the certificate) uses the set in force for
// the block (ctx.authorities), which changes only from the next height.
t.test('evidence is checked against the set in force for the block, not one changed earlier in the same block', async (t) => {
  const c = makeChain({ authorities: 4 })
  advance(c, [])
  const newcomer = testSigner('evidence-newcomer')
  const admit: OrgAction = {
    kind: 'admit',
    org: { id: 'evidence-newcomer', name: 'N', role: 'authority', signKey: newcomer.publicKey, encKey: new Uint8Array(32), addrs: [] },
  }
  const votes = [0, 1, 2].map((i) => vote(c, authority(c, i), admit))
  // Height 1 was finalized without the newcomer, and it is not in the set in force for block 2 either.
  const ev = evidence(c, voteBy(newcomer, X), voteBy(newcomer, Y))
  const r = advance(c, [...votes, ev])
  t.same(
    r.block.txs.slice(0, 3).map((x) => toHex(x.id)),
    votes.map((x) => toHex(x.id)),
    'the three votes are included (the newcomer is admitted by this block)',
  )
  t.same(
    r.rejected.map((x) => x.error.code),
    ['TX_INVALID'],
    'evidence naming a key outside the set in force is refused',
  )

  const five = makeChain({ authorities: 5 })
  advance(five, [])
  const leaving = authority(five, 4)
  const remove: OrgAction = { kind: 'remove', id: 'auth-4' }
  const removal = [0, 1, 2, 3].map((i) => vote(five, authority(five, i), remove))
  const ev5 = evidence(five, voteBy(leaving, X), voteBy(leaving, Y))
  const r5 = advance(five, [...removal, ev5])
  t.same(
    r5.rejected.map((x) => x.error.code),
    [],
    'evidence against an authority of the set in force (which finalized height 1) is accepted, though a vote earlier in the block removes it',
  )
})
