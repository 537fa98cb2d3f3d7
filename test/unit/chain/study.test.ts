import t from 'tap'
import { randomBytes } from 'node:crypto'
import {
  decodeTx,
  eraseStudyTx,
  getErased,
  getNonce,
  getParams,
  getStudy,
  isErased,
  nextVersion,
  registerStudyTx,
  signTx,
  studyToJSON,
  studyVersions,
  type RegisterStudyPayload,
  type Tx,
} from '../../../src/chain/index.js'
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

/** A new version of `earlier`: a fresh registration by the same custodian that extends it. */
function version(earlier: RegisterStudyPayload, over: Partial<RegisterStudyPayload> = {}): RegisterStudyPayload {
  return payload(earlier.custodian, {
    contentRoot: new Uint8Array(randomBytes(32)),
    extends: { studyId: earlier.studyId, contentRoot: earlier.contentRoot },
    ...over,
  })
}

const ids = (vs: { studyId: Uint8Array }[]): string[] => vs.map((v) => toHex(v.studyId))

t.test('versions: a registration extends an earlier one of its custodian; the ledger keeps one chain, found from each version', async (t) => {
  const c = chain()
  const member = signerOf(c, 'member-0')
  const v1 = payload('member-0')
  const v2 = version(v1)
  const v3 = version(v2, { owner: null, ownerEnvelope: null, ownerEphemeral: null })
  t.same(advance(c, [tx(c, member, v1)]).rejected, [])
  t.same(studyVersions(c.state, v1.studyId), [{ studyId: v1.studyId, height: c.head.header.height, erased: false }], 'a study alone is its own chain')
  t.same(advance(c, [tx(c, member, v2)]).rejected, [])
  t.same(advance(c, [tx(c, member, v3)]).rejected, [])
  const r2 = getStudy(c.state, v2.studyId)
  t.equal(toHex(r2?.extends?.studyId ?? new Uint8Array()), toHex(v1.studyId), 'the record names the version it extends')
  t.equal(toHex(r2?.extends?.contentRoot ?? new Uint8Array()), toHex(v1.contentRoot), 'with its content root')
  t.equal(getStudy(c.state, v1.studyId)?.extends, undefined, 'the first version extends nothing')
  t.equal(toHex(nextVersion(c.state, v1.studyId) ?? new Uint8Array()), toHex(v2.studyId), 'the first version finds the second')
  t.equal(nextVersion(c.state, v3.studyId), undefined, 'the newest has no next version')
  const chainIds = [v1, v2, v3].map((p) => toHex(p.studyId))
  for (const p of [v1, v2, v3]) t.same(ids(studyVersions(c.state, p.studyId)), chainIds, `the same chain, oldest first, from ${toHex(p.studyId).slice(0, 8)}`)
  t.same(
    studyVersions(c.state, v3.studyId).map((v) => v.height),
    [1, 2, 3],
    'each with the height of its registration',
  )
  t.same(studyVersions(c.state, new Uint8Array(16)), [], 'an id never registered has no chain')
  t.same(studyToJSON(v2).extends, { studyId: toHex(v1.studyId), contentRoot: toHex(v1.contentRoot) }, 'JSON: the version it extends, in hex')
  t.equal(studyToJSON(v1).extends, null, 'JSON: null without one')
})

t.test('versions: each refusal, by its code; a refused version leaves no trace', async (t) => {
  const c = makeChain({
    authorities: 1,
    members: 2,
    params: { chunkSize: CHUNK, maxBlockTxs: 8, maxBlockBytes: 64 * 1024, maxTxBytes: 8 * 1024, blockIntervalMs: 100 },
  })
  const member = signerOf(c, 'member-0')
  const other = signerOf(c, 'member-1')
  const v1 = payload('member-0')
  const theirs = payload('member-1')
  const erased = payload('member-0', { owner: null, ownerEnvelope: null, ownerEphemeral: null })
  // One registration per block: tx() signs at the sender's nonce in the state.
  for (const [signer, p] of [
    [member, v1],
    [other, theirs],
    [member, erased],
  ] as const)
    t.same(advance(c, [tx(c, signer, p)]).rejected, [])
  t.same(
    advance(c, [
      signTx(member, { chainId: CHAIN_ID, type: eraseStudyTx.name, nonce: getNonce(c.state, member.publicKey), payload: { studyId: erased.studyId } }),
    ]).rejected,
    [],
  )
  t.ok(isErased(c.state, erased.studyId))

  const refused = (what: string, signer: Ed25519Signer, p: RegisterStudyPayload, code: string, message: RegExp): void => {
    const r = advance(c, [tx(c, signer, p)])
    t.same(
      r.rejected.map((x) => x.error.code),
      [code],
      what,
    )
    t.match(r.rejected[0]?.error.message ?? '', message, `${what}: the message says why`)
    t.equal(getStudy(c.state, p.studyId), undefined, `${what}: not registered`)
  }
  refused(
    'an unknown study',
    member,
    version(v1, { extends: { studyId: new Uint8Array(16).fill(9), contentRoot: v1.contentRoot } }),
    'TX_INVALID',
    /no study 0909.* to extend/,
  )
  refused('an erased study', member, version(erased), 'TX_INVALID', /was erased/)
  refused("another organization's study", member, version(theirs, { custodian: 'member-0' }), 'TX_UNAUTHORIZED', /kept by member-1/)
  refused(
    'another content root',
    member,
    version(v1, { extends: { studyId: v1.studyId, contentRoot: new Uint8Array(32).fill(7) } }),
    'TX_INVALID',
    /content root/,
  )
  t.equal(nextVersion(c.state, v1.studyId), undefined, 'no refusal left a next version behind')

  const v2 = version(v1)
  t.same(advance(c, [tx(c, member, v2)]).rejected, [], 'the right one is registered')
  refused('a second version of the same study (a fork)', member, version(v1), 'TX_ALREADY_EXTENDED', new RegExp(`new version already, ${toHex(v2.studyId)}`))
  t.equal(toHex(nextVersion(c.state, v1.studyId) ?? new Uint8Array()), toHex(v2.studyId), 'the chain is unchanged')

  // Two versions of one study in one block: the first in block order is the version, the second a fork.
  const a = version(v2)
  const b = version(v2)
  const nonce = getNonce(c.state, member.publicKey)
  const sign = (p: RegisterStudyPayload, n: number): Tx => signTx(member, { chainId: CHAIN_ID, type: registerStudyTx.name, nonce: n, payload: p })
  const r = advance(c, [sign(a, nonce), sign(b, nonce + 1)])
  t.same(
    r.rejected.map((x) => [toHex(x.tx.id), x.error.code]),
    [[toHex(sign(b, nonce + 1).id), 'TX_ALREADY_EXTENDED']],
    'in one block: the second is refused',
  )
  t.same(
    ids(studyVersions(c.state, v1.studyId)),
    [v1, v2, a].map((p) => toHex(p.studyId)),
  )
})

t.test('versions: erasing one leaves the chain whole; an erased version is neither extended nor replaced', async (t) => {
  const c = chain()
  const member = signerOf(c, 'member-0')
  const noOwner = { owner: null, ownerEnvelope: null, ownerEphemeral: null }
  const v1 = payload('member-0', noOwner)
  const v2 = version(v1, noOwner)
  const v3 = version(v2, noOwner)
  for (const p of [v1, v2, v3]) t.same(advance(c, [tx(c, member, p)]).rejected, [])
  const erase = (p: RegisterStudyPayload): void => {
    t.same(
      advance(c, [signTx(member, { chainId: CHAIN_ID, type: eraseStudyTx.name, nonce: getNonce(c.state, member.publicKey), payload: { studyId: p.studyId } })])
        .rejected,
      [],
    )
  }
  // The middle one: its neighbours still reach each other through its tombstone.
  erase(v2)
  t.equal(getStudy(c.state, v2.studyId), undefined)
  t.equal(toHex(getErased(c.state, v2.studyId)?.study.extends?.studyId ?? new Uint8Array()), toHex(v1.studyId), 'the tombstone keeps the version it extended')
  for (const p of [v1, v3])
    t.same(
      studyVersions(c.state, p.studyId).map((v) => [toHex(v.studyId), v.erased]),
      [
        [toHex(v1.studyId), false],
        [toHex(v2.studyId), true],
        [toHex(v3.studyId), false],
      ],
      `from ${p === v1 ? 'the first' : 'the last'} version: the erased one in its place, marked`,
    )
  t.equal(toHex(getStudy(c.state, v3.studyId)?.extends?.studyId ?? new Uint8Array()), toHex(v2.studyId), 'the later version still names the erased one')
  t.same(
    advance(c, [tx(c, member, version(v1, noOwner))]).rejected.map((x) => x.error.code),
    ['TX_ALREADY_EXTENDED'],
    'an erasure does not reopen the chain behind it',
  )
  // The newest: the chain ends at an erased version, and nothing extends it.
  erase(v3)
  t.same(
    studyVersions(c.state, v1.studyId).map((v) => v.erased),
    [false, true, true],
  )
  t.same(
    advance(c, [tx(c, member, version(v3, noOwner))]).rejected.map((x) => x.error.code),
    ['TX_INVALID'],
    'an erased version is not extended',
  )
  // The first: the survivors are none, the chain is still read from any tombstone.
  erase(v1)
  t.same(
    studyVersions(c.state, v2.studyId).map((v) => v.erased),
    [true, true, true],
  )
})

t.test('versions: encoding', async (t) => {
  const c = chain()
  const member = signerOf(c, 'member-0')
  const v1 = payload('member-0')
  const v2 = version(v1)
  const plain = tx(c, member, v1)
  const ext = tx(c, member, v2)
  const d = decodeTx(ext.bytes, { chainId: CHAIN_ID, maxBytes: 8192 })
  t.same(registerStudyTx.toJSON(d.payload as RegisterStudyPayload), registerStudyTx.toJSON(v2), 'wire round trip with the version it extends')
  t.equal((registerStudyTx.encode(v1) as unknown[]).length, 12, 'without: the 12 fields, nothing for the absent one')
  t.equal((registerStudyTx.encode(v2) as unknown[]).length, 13, 'with: a 13th field')
  t.equal(
    ext.bytes.length - plain.bytes.length,
    1 + 2 + 16 + 2 + 32,
    'the 13th field costs a fixarray of two bins (16 and 32 bytes), and nothing else changes size',
  )
  t.equal((decodeTx(plain.bytes, { chainId: CHAIN_ID, maxBytes: 8192 }).payload as RegisterStudyPayload).extends, undefined, 'decoded without: absent')
  // Malformed 13th fields, and a 14th, are refused at decode.
  const wire = registerStudyTx.encode(v2) as unknown[]
  const bad: unknown[][] = [
    [...wire.slice(0, 12), [v1.studyId]],
    [...wire.slice(0, 12), [v1.studyId.subarray(0, 15), v1.contentRoot]],
    [...wire.slice(0, 12), [v1.studyId, v1.contentRoot.subarray(0, 31)]],
    [...wire.slice(0, 12), null],
    [...wire.slice(0, 12), new Uint8Array(0)],
    [...wire, new Uint8Array(0)],
    wire.slice(0, 11),
  ]
  for (const [i, b] of bad.entries()) t.throws(() => registerStudyTx.decode(b), { name: 'CodecError', code: 'CODEC_SCHEMA' }, `malformed case ${i}`)
})
