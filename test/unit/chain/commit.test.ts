import t from 'tap'
import { DOMAIN, signingBytes } from '../../../src/crypto/index.js'
import { toHex } from '../../../src/util/index.js'
import {
  authoritySet,
  decodeCertificate,
  encode,
  encodeCertificate,
  signPrecommit,
  verifyCertificate,
  voteSigningBytes,
  certificateToJSON,
  type CommitCertificate,
  type CommitSig,
} from '../../../src/chain/index.js'
import { CHAIN_ID, advance, makeChain, testSigner } from './fixtures.js'

const chain = makeChain({ authorities: 4, members: 1 })
const block = advance(chain, []).block
const set = authoritySet(chain.state)
const H = block.header.height
const auth = chain.authorities.map((o) => o.signer)
const sig = (i: number, round = 0, hash = block.hash, height = H, chainId = CHAIN_ID): CommitSig => {
  const s = auth[i]
  if (s === undefined) throw new Error(`no authority ${i}`)
  return signPrecommit(s, chainId, height, round, hash)
}
const cert = (sigs: CommitSig[], over: Partial<CommitCertificate> = {}): CommitCertificate => ({ height: H, round: 0, blockHash: block.hash, sigs, ...over })
const verify = (c: CommitCertificate, hash = block.hash, height = H): void => verifyCertificate(c, CHAIN_ID, height, hash, set)
const BAD = { name: 'BlockError', code: 'BLOCK_BAD_CERTIFICATE' }

t.test('a quorum of valid precommits verifies', async (t) => {
  t.equal(set.quorum, 3)
  t.doesNotThrow(() => verify(cert([sig(0), sig(1), sig(2)])), '3 of 4')
  t.doesNotThrow(() => verify(cert([sig(3), sig(1), sig(0), sig(2)])), '4 of 4, any order')
  t.doesNotThrow(() => verify(cert([sig(1, 5, block.hash), sig(2, 5), sig(3, 5)], { round: 5 })), 'a later round')
})

t.test('too few signatures', async (t) => {
  t.throws(() => verify(cert([sig(0), sig(1)])), BAD, '2 of 4')
  t.throws(() => verify(cert([])), BAD, 'none')
})

t.test('signer outside the authority set', async (t) => {
  const member = chain.orgs.find((o) => o.role === 'member')
  if (member === undefined) throw new Error('no member')
  t.throws(() => verify(cert([sig(0), sig(1), signPrecommit(member.signer, CHAIN_ID, H, 0, block.hash)])), BAD, 'a member')
  t.throws(
    () => verify(cert([sig(0), sig(1), sig(2), signPrecommit(testSigner('outsider'), CHAIN_ID, H, 0, block.hash)])),
    BAD,
    'an outsider, even beside a quorum',
  )
})

t.test('duplicate signer', async (t) => {
  t.throws(() => verify(cert([sig(0), sig(1), sig(1)])), BAD, 'two from one authority do not make three')
  t.throws(() => verify(cert([sig(0), sig(1), sig(2), sig(2)])), BAD, 'a duplicate beside a quorum')
})

t.test('bad signatures', async (t) => {
  const s2 = sig(2)
  const flipped = new Uint8Array(s2.signature)
  flipped[10] = (flipped[10] as number) ^ 0x40
  t.throws(() => verify(cert([sig(0), sig(1), { signer: s2.signer, signature: flipped }])), BAD, 'bit flipped')
  t.throws(() => verify(cert([sig(0), sig(1), { signer: s2.signer, signature: sig(3).signature }])), BAD, "someone else's signature")
  t.throws(() => verify(cert([sig(0), sig(1), sig(2, 1)])), BAD, 'signed for another round')
  t.throws(() => verify(cert([sig(0), sig(1), sig(2, 0, block.hash, H, 'other-chain')])), BAD, 'signed for another chain')
  t.throws(() => verify(cert([sig(0), sig(1), sig(2, 0, block.hash, H + 1)])), BAD, 'signed for another height')
  const a2 = auth[2]
  if (a2 === undefined) throw new Error('no authority 2')
  const prevote = { signer: a2.publicKey, signature: a2.sign(voteSigningBytes(CHAIN_ID, 'prevote', H, 0, block.hash)) }
  t.throws(() => verify(cert([sig(0), sig(1), prevote])), BAD, 'a prevote is not a precommit')
  const nil = { signer: a2.publicKey, signature: a2.sign(voteSigningBytes(CHAIN_ID, 'precommit', H, 0, null)) }
  t.throws(() => verify(cert([sig(0), sig(1), nil])), BAD, 'a nil precommit does not count for the block')
  const untagged = { signer: a2.publicKey, signature: a2.sign(encode([CHAIN_ID, 'precommit', BigInt(H), 0, block.hash])) }
  t.throws(() => verify(cert([sig(0), sig(1), untagged])), BAD, 'signature without the VOTE domain tag')
  const otherTag = { signer: a2.publicKey, signature: a2.sign(signingBytes(DOMAIN.TX_SIGN, encode([CHAIN_ID, 'precommit', BigInt(H), 0, block.hash]))) }
  t.throws(() => verify(cert([sig(0), sig(1), otherTag])), BAD, 'signature under another domain tag')
})

t.test('certificate for another block or height', async (t) => {
  const other = new Uint8Array(32).fill(9)
  const good = cert([sig(0), sig(1), sig(2)])
  t.throws(() => verify(good, other), BAD, 'checked against another block hash')
  t.throws(() => verify(good, block.hash, H + 1), BAD, 'checked against another height')
  t.throws(() => verify(cert([sig(0, 0, other), sig(1, 0, other), sig(2, 0, other)], { blockHash: other })), BAD, 'valid signatures for another block')
})

t.test('encode/decode round trip; malformed bytes -> BLOCK_BAD_CERTIFICATE', async (t) => {
  const c = cert([sig(0), sig(1), sig(2)], { round: 7 })
  const bytes = encodeCertificate(cert([sig(0, 7), sig(1, 7), sig(2, 7)], { round: 7 }))
  const d = decodeCertificate(bytes)
  t.equal(d.height, H)
  t.equal(d.round, 7)
  t.equal(toHex(d.blockHash), toHex(block.hash))
  t.same(
    d.sigs.map((s) => toHex(s.signer)),
    c.sigs.map((s) => toHex(s.signer)),
  )
  t.equal(toHex(encodeCertificate(d)), toHex(bytes))
  t.doesNotThrow(() => verify(d))
  t.same(
    certificateToJSON(d).signers,
    c.sigs.map((s) => toHex(s.signer)),
  )
  const cases: [Uint8Array, string][] = [
    [bytes.subarray(0, bytes.length - 1), 'truncated'],
    [encode([BigInt(H), 0, block.hash]), 'three fields'],
    [encode([H, 0, block.hash, []]), 'height as a plain number'],
    [encode([BigInt(H), -1, block.hash, []]), 'negative round'],
    [encode([BigInt(H), 0, block.hash.subarray(0, 31), []]), 'hash of 31 bytes'],
    [encode([BigInt(H), 0, block.hash, [[auth[0]?.publicKey ?? new Uint8Array(0), new Uint8Array(63)]]]), 'signature of 63 bytes'],
    [encode([BigInt(H), 0, block.hash, [[new Uint8Array(32)]]]), 'sig entry of one field'],
    [encode([BigInt(H), 0, block.hash, new Array(1025).fill(null)]), 'more than 1024 signatures'],
    [new Uint8Array([0x80]), 'a map'],
  ]
  for (const [b, what] of cases) t.throws(() => decodeCertificate(b), BAD, what)
})
