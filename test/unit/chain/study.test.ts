import t from 'tap'
import { randomBytes } from 'node:crypto'
import { getNonce, getParams, getStudy, registerStudyTx, signTx, decodeTx, type RegisterStudyPayload, type Tx } from '../../../src/chain/index.js'
import type { Ed25519Signer } from '../../../src/crypto/index.js'
import { toHex } from '../../../src/util/index.js'
import { CHAIN_ID, advance, makeChain, testSigner, type TestChain } from './fixtures.js'

const CHUNK = 4096

function payload(custodian: string, over: Partial<RegisterStudyPayload> = {}): RegisterStudyPayload {
  return {
    studyId: new Uint8Array(randomBytes(16)),
    custodian,
    owner: testSigner('patient').publicKey,
    contentRoot: new Uint8Array(32).fill(1),
    size: 3 * (CHUNK + 16) - 100,
    chunkCount: 3,
    chunkSize: CHUNK,
    studyDigest: new Uint8Array(32).fill(2),
    custodianEnvelope: new Uint8Array(32).fill(3),
    ownerEnvelope: new Uint8Array(32).fill(4),
    demographics: new Uint8Array(32).fill(5),
    ownerEphemeral: new Uint8Array(32).fill(6),
    ...over,
  }
}

function tx(c: TestChain, signer: Ed25519Signer, p: RegisterStudyPayload): Tx {
  return signTx(signer, { chainId: CHAIN_ID, type: registerStudyTx.name, nonce: getNonce(c.state, signer.publicKey), payload: p })
}

const chain = (): TestChain =>
  makeChain({ authorities: 1, members: 1, params: { chunkSize: CHUNK, maxBlockTxs: 8, maxBlockBytes: 64 * 1024, maxTxBytes: 8 * 1024, blockIntervalMs: 100 } })
const signerOf = (c: TestChain, id: string): Ed25519Signer => (c.orgs.find((o) => o.id === id) as { signer: Ed25519Signer }).signer

t.test('a custodian registers a study: ids, hashes and sizes only, under 1 KiB', async (t) => {
  const c = chain()
  const p = payload('member-0')
  const x = tx(c, signerOf(c, 'member-0'), p)
  t.ok(x.bytes.length <= 1024, `transaction of ${x.bytes.length} bytes, signature included`)
  const r = advance(c, [x])
  t.same(r.rejected, [])
  const rec = getStudy(c.state, p.studyId)
  t.equal(rec?.custodian, 'member-0')
  t.equal(toHex(rec?.contentRoot ?? new Uint8Array()), toHex(p.contentRoot))
  t.equal(rec?.height, c.head.header.height)
  const d = decodeTx(x.bytes, { chainId: CHAIN_ID, maxBytes: 8192 })
  t.same(registerStudyTx.toJSON(d.payload as RegisterStudyPayload), registerStudyTx.toJSON(p), 'wire round trip')
})

t.test('refusals', async (t) => {
  const c = chain()
  const member = signerOf(c, 'member-0')
  const cases: [string, Ed25519Signer, RegisterStudyPayload, string][] = [
    ['sender is not the custodian', signerOf(c, 'auth-0'), payload('member-0'), 'TX_UNAUTHORIZED'],
    ['unknown key', testSigner('stranger'), payload('member-0'), 'TX_UNAUTHORIZED'],
    ['chunk size differs from the chain', member, payload('member-0', { chunkSize: 1024 }), 'TX_INVALID'],
    ['size does not fit the chunks', member, payload('member-0', { size: 10 * CHUNK }), 'TX_INVALID'],
    ['owner without envelope', member, payload('member-0', { ownerEnvelope: null }), 'TX_INVALID'],
    ['envelope without owner', member, payload('member-0', { owner: null }), 'TX_INVALID'],
    ['owner without ephemeral key', member, payload('member-0', { ownerEphemeral: null }), 'TX_INVALID'],
    ['ephemeral key without owner', member, payload('member-0', { owner: null, ownerEnvelope: null }), 'TX_INVALID'],
  ]
  for (const [what, signer, p, code] of cases) {
    const r = advance(c, [tx(c, signer, p)])
    t.same(
      r.rejected.map((x) => x.error.code),
      [code],
      what,
    )
  }
  const p = payload('member-0', { owner: null, ownerEnvelope: null, ownerEphemeral: null })
  t.same(advance(c, [tx(c, member, p)]).rejected, [], 'no owner: the custodian decides')
  t.same(
    advance(c, [tx(c, member, { ...p })]).rejected.map((x) => x.error.code),
    ['TX_INVALID'],
    'a study id is registered once',
  )
})

t.test('malformed payloads are refused at decode', async (t) => {
  const c = chain()
  const bad = [
    { ...payload('member-0'), studyId: new Uint8Array(15) },
    { ...payload('member-0'), contentRoot: new Uint8Array(31) },
    { ...payload('member-0'), owner: new Uint8Array(7) },
    { ...payload('member-0'), ownerEphemeral: new Uint8Array(31) },
  ]
  for (const p of bad) {
    const x = tx(c, signerOf(c, 'member-0'), p)
    t.throws(() => decodeTx(x.bytes, { chainId: CHAIN_ID, maxBytes: 8192 }), { code: 'TX_MALFORMED' })
  }
})

t.test("a study above the chain's bounds (maxStudyChunks, maxStudyBytes) is refused", async (t) => {
  const c = chain()
  const member = signerOf(c, 'member-0')
  const params = getParams(c.state)
  // 2^32-1 chunks with a matching size: a holder answering chunks.have for it would build a 512 MiB bitfield.
  const huge = 0xffffffff
  const hugeP = payload('member-0', { chunkCount: huge, size: huge * (CHUNK + 16) - 100 })
  const r = advance(c, [tx(c, member, hugeP)])
  t.same(
    r.rejected.map((x) => x.error.code),
    ['TX_INVALID'],
    `${huge} chunks refused`,
  )
  t.match(r.rejected[0]?.error.message ?? '', /maxStudyChunks/, 'the message names the bound')
  t.equal(getStudy(c.state, hugeP.studyId), undefined, 'not on the ledger')

  // Just above and at the chunk bound.
  const n = params.maxStudyChunks
  const above = payload('member-0', { chunkCount: n + 1, size: (n + 1) * (CHUNK + 16) })
  t.same(
    advance(c, [tx(c, member, above)]).rejected.map((x) => x.error.code),
    ['TX_INVALID'],
    `${n + 1} chunks refused`,
  )
  // At the byte bound (the chunk bound is not reached then: each chunk also carries a 16-byte tag).
  const at = payload('member-0', { chunkCount: Math.ceil(params.maxStudyBytes / (CHUNK + 16)), size: params.maxStudyBytes })
  t.ok(at.chunkCount <= n)
  t.same(advance(c, [tx(c, member, at)]).rejected, [], `${at.chunkCount} chunks of ${at.size} bytes accepted`)

  // The byte bound: a size above maxStudyBytes with a matching chunk count.
  const bytes = params.maxStudyBytes + 1
  const chunks = Math.ceil(bytes / (CHUNK + 16))
  const big = payload('member-0', { chunkCount: chunks, size: bytes })
  const rb = advance(c, [tx(c, member, big)])
  t.same(
    rb.rejected.map((x) => x.error.code),
    ['TX_INVALID'],
    `${bytes} bytes refused`,
  )
  t.match(rb.rejected[0]?.error.message ?? '', /maxStudyBytes|maxStudyChunks/, 'the message names a bound')
})
