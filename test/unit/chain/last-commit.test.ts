import t from 'tap'
import { toHex } from '../../../src/util/index.js'
import type { Ed25519Signer } from '../../../src/crypto/index.js'
import {
  ZERO_HASH,
  applyBlock,
  authoritySet,
  decodeBlock,
  decodeCanonical,
  encode,
  encodeCertificate,
  lastCommitHashOf,
  makeBlock,
  parentVoters,
  signPrecommit,
  type Block,
  type CommitCertificate,
  type Encodable,
  type OrgAction,
} from '../../../src/chain/index.js'
import { CHAIN_ID, advance, build, certify, codeOf, dumpState, makeChain, testOrg, testSigner, vote, type TestChain } from './fixtures.js'

const BAD = { name: 'BlockError', code: 'BLOCK_BAD_CERTIFICATE' }
const auth = (c: TestChain, i: number): Ed25519Signer => {
  const a = c.authorities[i]
  if (a === undefined) throw new Error(`no authority ${i}`)
  return a.signer
}

/** A chain of four authorities and a member at height 1, with block 1 kept. */
function atHeight1(): { c: TestChain; b1: Block } {
  const c = makeChain({ authorities: 4, members: 1 })
  const b1 = advance(c, []).block
  return { c, b1 }
}

t.test("a block >= 2 must carry its parent's certificate", async (t) => {
  const { c, b1 } = atHeight1()
  const good = build(c, []).block
  t.equal(good.header.height, 2)
  t.equal(toHex(good.lastCommit), toHex(encodeCertificate(c.lastCommit as CommitCertificate)), "block 2 carries block 1's certificate")
  t.equal(toHex(good.header.lastCommitHash), toHex(lastCommitHashOf(good.lastCommit)), 'and names it in the header')
  t.not(toHex(good.header.lastCommitHash), toHex(ZERO_HASH))
  t.doesNotThrow(() => applyBlock(c.state, c.head, good), 'it applies')
  t.equal(toHex(c.lastCommit?.blockHash ?? new Uint8Array(0)), toHex(b1.hash), 'the certificate is for block 1')

  const none = build(c, [], { lastCommit: null }).block
  t.equal(none.lastCommit.length, 0)
  t.equal(toHex(none.header.lastCommitHash), toHex(ZERO_HASH), 'the header says none, consistently')
  t.throws(() => applyBlock(c.state, c.head, none), BAD, 'without a lastCommit')
})

t.test('lastCommit checks in applyBlock: quorum, block, signatures, header hash', async (t) => {
  const { c, b1 } = atHeight1()
  const before = JSON.stringify(dumpState(c.state))
  const with_ = (cert: CommitCertificate): Block => build(c, [], { lastCommit: cert }).block
  const signed = (ids: number[], over: Partial<CommitCertificate> = {}): CommitCertificate => ({
    ...certify(c.state, b1, { signers: ids.map((i) => auth(c, i)) }),
    ...over,
  })

  // Controls: other quorums than the fixture's default verify too.
  t.doesNotThrow(() => applyBlock(c.state, c.head, with_(signed([1, 2, 3]))), '3 of 4 (another three)')
  t.doesNotThrow(() => applyBlock(c.state, c.head, with_(signed([3, 0, 2, 1]))), '4 of 4')
  t.doesNotThrow(() => applyBlock(c.state, c.head, with_(certify(c.state, b1, { round: 3 }))), 'decided at a later round')

  t.throws(() => applyBlock(c.state, c.head, with_(signed([0, 1]))), BAD, 'too few signatures: 2 of 4')
  t.throws(() => applyBlock(c.state, c.head, with_(signed([]))), BAD, 'no signatures')
  t.throws(() => applyBlock(c.state, c.head, with_(signed([0, 1, 1]))), BAD, 'one authority counted twice')

  const sibling = makeChain({ authorities: 4, members: 1 })
  const otherBlock1 = advance(sibling, [], { dt: 7 }).block
  t.not(toHex(otherBlock1.hash), toHex(b1.hash))
  t.throws(() => applyBlock(c.state, c.head, with_(certify(c.state, otherBlock1))), BAD, 'a valid certificate for the wrong block hash (a sibling block 1)')
  t.throws(() => applyBlock(c.state, c.head, with_(signed([0, 1, 2], { blockHash: otherBlock1.hash }))), BAD, 'signatures for block 1 under another block hash')
  const h2 = { ...b1, header: { ...b1.header, height: 2 } }
  t.throws(() => applyBlock(c.state, c.head, with_(certify(c.state, h2))), BAD, 'a certificate for the right hash at another height')

  const s = signed([0, 1, 2])
  const sig2 = s.sigs[2]
  if (sig2 === undefined) throw new Error('no third signature')
  const flipped = new Uint8Array(sig2.signature)
  flipped[5] = (flipped[5] as number) ^ 0x01
  t.throws(
    () => applyBlock(c.state, c.head, with_({ ...s, sigs: [s.sigs[0], s.sigs[1], { signer: sig2.signer, signature: flipped }] as CommitCertificate['sigs'] })),
    BAD,
    'a bad signature (bit flipped)',
  )
  const all4 = signed([0, 1, 2, 3])
  t.throws(
    () => applyBlock(c.state, c.head, with_({ ...all4, sigs: all4.sigs.map((x, i) => (i === 3 ? { signer: x.signer, signature: flipped } : x)) })),
    BAD,
    'a bad signature beside a valid quorum',
  )
  const otherChain = { ...s, sigs: [0, 1, 2].map((i) => signPrecommit(auth(c, i), 'other-chain', 1, 0, b1.hash)) }
  t.throws(() => applyBlock(c.state, c.head, with_(otherChain)), BAD, 'signed for another chain')
  const member = c.orgs.find((o) => o.role === 'member')
  if (member === undefined) throw new Error('no member')
  t.throws(
    () => applyBlock(c.state, c.head, with_(signed([0, 1], { sigs: [...signed([0, 1]).sigs, signPrecommit(member.signer, CHAIN_ID, 1, 0, b1.hash)] }))),
    BAD,
    "a member's precommit makes no quorum",
  )
  t.throws(
    () =>
      applyBlock(
        c.state,
        c.head,
        with_(signed([0, 1, 2], { sigs: [...signed([0, 1, 2]).sigs, signPrecommit(testSigner('outsider'), CHAIN_ID, 1, 0, b1.hash)] })),
      ),
    BAD,
    'an outsider beside a quorum',
  )

  // The header names the certificate the body carries.
  const good = build(c, []).block
  const otherCert = encodeCertificate(signed([1, 2, 3]))
  t.throws(() => applyBlock(c.state, c.head, makeBlock(good.header, good.txs, otherCert)), BAD, 'a valid certificate that does not match header.lastCommitHash')
  t.throws(
    () => applyBlock(c.state, c.head, makeBlock({ ...good.header, lastCommitHash: ZERO_HASH }, good.txs, good.lastCommit)),
    BAD,
    'header says none, body carries one',
  )
  t.throws(
    () => applyBlock(c.state, c.head, makeBlock({ ...good.header, lastCommitHash: new Uint8Array(32).fill(3) }, good.txs, good.lastCommit)),
    BAD,
    'header names another hash',
  )
  const garbage = encode(['not', 'a', 'certificate'])
  t.throws(
    () => applyBlock(c.state, c.head, makeBlock({ ...good.header, lastCommitHash: lastCommitHashOf(garbage) }, good.txs, garbage)),
    BAD,
    'malformed certificate bytes (matching hash)',
  )

  t.equal(JSON.stringify(dumpState(c.state)), before, 'the state is untouched by every refused block')
})

t.test('block 1 carries no certificate', async (t) => {
  const c = makeChain({ authorities: 4 })
  const gen = { header: c.head.header, hash: c.head.hash, txs: [], lastCommit: new Uint8Array(0), bytes: new Uint8Array(0) }
  const genCert = certify(c.state, gen)
  const b1 = build(c, [], { lastCommit: genCert }).block
  t.ok(b1.lastCommit.length > 0 && b1.header.height === 1, 'a block 1 built with a certificate of genesis')
  t.throws(() => applyBlock(c.state, c.head, b1), BAD, 'block 1 with a lastCommit')
  const plain = build(c, []).block
  t.doesNotThrow(() => applyBlock(c.state, c.head, plain), 'block 1 without one applies')
  t.throws(
    () => applyBlock(c.state, c.head, makeBlock({ ...plain.header, lastCommitHash: new Uint8Array(32).fill(1) }, [], new Uint8Array(0))),
    BAD,
    'block 1 naming a certificate it does not carry',
  )
})

t.test('decodeBlock: the wire form is [header, txs, lastCommit bytes]', async (t) => {
  const { c } = atHeight1()
  const block = build(c, []).block
  const o = { chainId: CHAIN_ID, maxBlockBytes: 1 << 20, maxBlockTxs: 8, maxTxBytes: 8192 }
  const [h, txs, lc] = decodeCanonical(block.bytes) as Encodable[]
  t.equal(toHex(lc as Uint8Array), toHex(block.lastCommit), 'the third field is the certificate bytes')
  t.equal(toHex(encode([h as Encodable, txs as Encodable, lc as Encodable])), toHex(block.bytes), 're-encodes')
  const malformed = { name: 'BlockError', code: 'BLOCK_MALFORMED' }
  t.throws(() => decodeBlock(encode([h as Encodable, txs as Encodable]), o), malformed, 'the old two-field form')
  t.throws(() => decodeBlock(encode([h as Encodable, txs as Encodable, lc as Encodable, new Uint8Array(0)]), o), malformed, 'a fourth field')
  t.throws(() => decodeBlock(encode([h as Encodable, txs as Encodable, 'cert']), o), malformed, 'lastCommit not bytes')
  t.throws(() => decodeBlock(encode([h as Encodable, txs as Encodable, new Uint8Array(64 * 1024 + 1)]), o), malformed, 'lastCommit over 64 KiB')
  t.throws(
    () => decodeBlock(encode([(h as Encodable[]).slice(0, 9), txs as Encodable, lc as Encodable]), o),
    malformed,
    'a nine-field header (no lastCommitHash)',
  )
  t.equal(
    codeOf(() => decodeBlock(block.bytes, o)),
    undefined,
    'the block itself decodes',
  )
})

t.test('after a block that admits a 5th authority, the next lastCommit is checked against the previous 4 (parentVoters)', async (t) => {
  const c = makeChain({ authorities: 4 })
  const newcomer = testOrg('auth-new', 'authority')
  const admit: OrgAction = {
    kind: 'admit',
    org: { id: newcomer.id, name: 'New', role: 'authority', signKey: newcomer.signer.publicKey, encKey: newcomer.encKey, addrs: [] },
  }
  const old4 = [0, 1, 2, 3].map((i) => auth(c, i))
  // Block 1 decides the admission; it is finalized by the four.
  const r1 = advance(
    c,
    [0, 1, 2].map((i) => vote(c, auth(c, i), admit)),
    { signers: old4.slice(0, 3) },
  )
  t.same(r1.rejected, [])
  t.equal(authoritySet(c.state).members.length, 5, 'the set is now five')
  t.equal(authoritySet(c.state).quorum, 4)
  const pv = parentVoters(c.state)
  t.same(
    pv.members.map((m) => toHex(m.signKey)),
    old4.map((s) => toHex(s.publicKey)),
    'parentVoters: the four that finalized block 1',
  )
  t.equal(pv.quorum, 3)

  const b1 = r1.block
  const cert = (signers: Ed25519Signer[]): CommitCertificate => certify(c.state, b1, { signers })
  const blockWith = (x: CommitCertificate): Block => build(c, [], { lastCommit: x }).block
  t.doesNotThrow(() => applyBlock(c.state, c.head, blockWith(cert(old4.slice(0, 3)))), '3 of the old 4 (their quorum) verifies, though 3 of 5 would not')
  t.doesNotThrow(() => applyBlock(c.state, c.head, blockWith(cert(old4))), 'all of the old 4 verifies')
  t.throws(
    () => applyBlock(c.state, c.head, blockWith(cert([...old4.slice(0, 3), newcomer.signer]))),
    BAD,
    'a quorum of the new five including the newcomer is refused: the newcomer did not vote on block 1',
  )
  t.throws(
    () => applyBlock(c.state, c.head, blockWith(cert([...old4.slice(0, 2), newcomer.signer]))),
    BAD,
    'two of the old four plus the newcomer lack a quorum of the old set',
  )
  t.throws(() => applyBlock(c.state, c.head, blockWith(cert(old4.slice(0, 2)))), BAD, 'two of the old four lack a quorum')

  // Block 2 is finalized by the five; block 3's lastCommit needs 4 of them.
  const r2 = advance(c, [], { signers: old4.slice(0, 3) })
  t.equal(toHex(r2.block.header.authoritySetHash), toHex(authoritySet(c.state).hash), 'block 2 names the five')
  t.equal(parentVoters(c.state).members.length, 5, 'parentVoters is the current set again')
  t.equal(parentVoters(c.state).quorum, 4)
  t.throws(() => applyBlock(c.state, c.head, build(c, []).block), BAD, '3 signatures no longer make a quorum for block 2')
  const five = certify(c.state, r2.block, { signers: [old4[0] as Ed25519Signer, old4[1] as Ed25519Signer, old4[2] as Ed25519Signer, newcomer.signer] })
  t.doesNotThrow(() => applyBlock(c.state, c.head, build(c, [], { lastCommit: five }).block), '4 of 5, the newcomer among them, verify')
})
