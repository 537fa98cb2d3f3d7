import t from 'tap'
import fc from 'fast-check'
import { readFileSync } from 'node:fs'
import { z } from 'zod'
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js'
import { ed25519 } from '@noble/curves/ed25519.js'
import { Ed25519Signer, PatientStudyKeys, verifyEd25519, x25519FromPrivate } from '../../../src/crypto/index.js'
import { concatBytes, fromHex, toHex, utf8 } from '../../../src/util/index.js'
import {
  applyBlock,
  applyWrites,
  authoritySet,
  buildBlock,
  decodeBlock,
  decodeCertificate,
  decodeTx,
  encodeCertificate,
  genesisBlock,
  merkleRoot,
  parseGenesis,
  proposerFor,
  signPrecommit,
  signTx,
  consentTx,
  registerStudyTx,
  verifyCertificate,
  type Genesis,
  type Parent,
} from '../../../src/chain/index.js'

const hex = z.string().regex(/^(?:[0-9a-f]{2})*$/)
const hex32 = hex.length(64)
const Vectors = z.object({
  description: z.string().regex(/never regenerate silently/),
  tx: z
    .array(
      z.object({
        name: z.string(),
        seed: hex32,
        chainId: z.string(),
        type: z.literal('note'),
        nonce: z.number().int().nonnegative(),
        text: z.string(),
        sender: hex32,
        body: hex,
        bytes: hex,
        id: hex32,
        signature: hex.length(128),
      }),
    )
    .length(2),
  genesis: z.object({
    orgSeeds: z.record(z.string(), z.object({ signSeed: hex32, encPrivate: hex32 })),
    json: z.unknown(),
    blockHash: hex32,
    blockBytes: hex,
    stateRoot: hex32,
    authoritySetHash: hex32,
    txRoot: hex32,
  }),
  block1: z.object({ time: z.number(), proposer: z.string(), txIds: z.array(hex32), blockHash: hex32, blockBytes: hex, stateRoot: hex32, txRoot: hex32 }),
  certificate: z.object({ height: z.number(), round: z.number(), signers: z.array(z.string()), blockHash: hex32, bytes: hex }),
  block2: z.object({
    time: z.number(),
    proposer: z.string(),
    txIds: z.array(hex32).length(0),
    lastCommit: hex,
    lastCommitHash: hex32,
    blockHash: hex32,
    blockBytes: hex,
    stateRoot: hex32,
    txRoot: hex32,
  }),
  merkle: z.array(z.object({ leaves: z.number().int().nonnegative(), root: hex32 })).min(5),
  study: z.object({
    note: z.string(),
    register: z.object({
      custodianSeed: hex32,
      payload: z.object({
        studyId: hex.length(32),
        custodian: z.string(),
        owner: hex32,
        contentRoot: hex32,
        size: z.number().int(),
        chunkCount: z.number().int(),
        chunkSize: z.number().int(),
        studyDigest: hex32,
        custodianEnvelope: hex32,
        ownerEnvelope: hex32,
        demographics: hex32,
        ownerEphemeral: hex32,
      }),
      sender: hex32,
      bytes: hex,
      id: hex32,
      signature: hex.length(128),
    }),
    registerExtends: z.object({
      custodianSeed: hex32,
      nonce: z.number().int().nonnegative(),
      payload: z.object({
        studyId: hex.length(32),
        custodian: z.string(),
        owner: z.null(),
        contentRoot: hex32,
        size: z.number().int(),
        chunkCount: z.number().int(),
        chunkSize: z.number().int(),
        studyDigest: hex32,
        custodianEnvelope: hex32,
        ownerEnvelope: z.null(),
        demographics: hex32,
        ownerEphemeral: z.null(),
        extends: z.object({ studyId: hex.length(32), contentRoot: hex32 }),
      }),
      sender: hex32,
      bytes: hex,
      id: hex32,
      signature: hex.length(128),
    }),
    consent: z.object({
      patientCase: z.number().int(),
      policy: z.object({
        studyId: hex.length(32),
        anyOrg: z.boolean(),
        orgs: z.array(z.string()),
        purposes: z.array(z.string()),
        scopes: z.array(z.enum(['images', 'full'])),
        maxDurationMs: z.number().int(),
        researchPool: z.boolean(),
      }),
      sender: hex32,
      bytes: hex,
      id: hex32,
      signature: hex.length(128),
    }),
  }),
})
// After a deliberate format change, `npm run vectors:chain` (scripts/chain-vectors.ts) lists the values that differ and `-- --write` rewrites them.
const V = Vectors.parse(JSON.parse(readFileSync(new URL('../../vectors/chain.json', import.meta.url), 'utf8')))

// Independent reference pieces: msgpack written by hand, hashes on @noble/hashes.
const tagged = (tag: string, ...parts: Uint8Array[]): Uint8Array => nobleSha256(concatBytes(utf8(tag), new Uint8Array([0]), ...parts))
const u8 = (...b: number[]): Uint8Array => new Uint8Array(b)
function fixstr(s: string): Uint8Array {
  const b = utf8(s)
  if (b.length >= 32) throw new Error('fixstr only')
  return concatBytes(u8(0xa0 | b.length), b)
}
function bin8(b: Uint8Array): Uint8Array {
  if (b.length > 255) throw new Error('bin8 only')
  return concatBytes(u8(0xc4, b.length), b)
}
function bin16(b: Uint8Array): Uint8Array {
  if (b.length < 256 || b.length > 0xffff) throw new Error('bin16 only')
  return concatBytes(u8(0xc5, b.length >> 8, b.length & 0xff), b)
}
function int64(n: bigint): Uint8Array {
  const b = new Uint8Array(9)
  b[0] = 0xd3
  new DataView(b.buffer).setBigInt64(1, n)
  return b
}
function uint(n: number): Uint8Array {
  if (n < 0x80) return u8(n)
  if (n <= 0xff) return u8(0xcc, n)
  if (n <= 0xffff) return u8(0xcd, n >> 8, n & 0xff)
  const b = new Uint8Array(5)
  b[0] = 0xce
  new DataView(b.buffer).setUint32(1, n)
  return b
}
function refMerkle(leaves: Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return tagged('radchain/merkle-leaf/v1')
  const rec = (xs: Uint8Array[]): Uint8Array => {
    if (xs.length === 1) return tagged('radchain/merkle-leaf/v1', xs[0] as Uint8Array)
    let k = 1
    while (k * 2 < xs.length) k *= 2
    return tagged('radchain/merkle-node/v1', rec(xs.slice(0, k)), rec(xs.slice(k)))
  }
  return rec(leaves)
}
const leaf = (i: number): Uint8Array => nobleSha256(u8(i))

t.test('note transactions: pinned bytes, id and signature', async (t) => {
  for (const v of V.tx) {
    const signer = new Ed25519Signer(fromHex(v.seed))
    t.equal(toHex(signer.publicKey), v.sender, `${v.name}: sender is the RFC 8032 TEST 1 public key`)
    const tx = signTx(signer, { chainId: v.chainId, type: v.type, nonce: v.nonce, payload: { text: v.text } })
    t.equal(toHex(tx.bytes), v.bytes, `${v.name}: bytes`)
    t.equal(toHex(tx.id), v.id, `${v.name}: id`)
    t.equal(toHex(tx.signature), v.signature, `${v.name}: signature`)

    // Rebuilt without src/chain: body = [chainId, type, sender, nonce as int64, [text]], wire = [bin body, bin signature].
    const body = concatBytes(u8(0x95), fixstr(v.chainId), fixstr(v.type), bin8(fromHex(v.sender)), int64(BigInt(v.nonce)), u8(0x91), fixstr(v.text))
    t.equal(toHex(body), v.body, `${v.name}: body layout`)
    t.equal(toHex(concatBytes(u8(0x92), bin8(body), bin8(fromHex(v.signature)))), v.bytes, `${v.name}: wire layout`)
    t.equal(toHex(tagged('radchain/tx/v1', body)), v.id, `${v.name}: id = sha256(tag || 0 || body)`)
    const msg = concatBytes(utf8('radchain/tx-sign/v1'), u8(0), body)
    t.equal(toHex(ed25519.sign(msg, fromHex(v.seed))), v.signature, `${v.name}: @noble/curves signs the same`)

    const d = decodeTx(fromHex(v.bytes), { chainId: v.chainId, maxBytes: 1024 })
    t.equal(d.chainId, v.chainId)
    t.equal(d.type, 'note')
    t.equal(toHex(d.sender), v.sender)
    t.equal(d.nonce, v.nonce)
    t.same(d.payload, { text: v.text })
    t.equal(toHex(d.id), v.id)
    t.equal(toHex(d.signature), v.signature)
  }
})

function orgSigner(g: typeof V.genesis, id: string): Ed25519Signer {
  const s = g.orgSeeds[id]
  if (s === undefined) throw new Error(`no seed for ${id}`)
  return new Ed25519Signer(fromHex(s.signSeed))
}

t.test('genesis: pinned block hash, bytes, state root, authority set hash', async (t) => {
  const g: Genesis = parseGenesis(V.genesis.json)
  for (const o of g.orgs) t.equal(toHex(o.signKey), toHex(orgSigner(V.genesis, o.id).publicKey), `${o.id} key from its seed`)
  const gb = genesisBlock(g)
  t.equal(toHex(gb.block.hash), V.genesis.blockHash, 'block hash')
  t.equal(toHex(gb.block.bytes), V.genesis.blockBytes, 'block bytes')
  t.equal(toHex(gb.block.header.stateRoot), V.genesis.stateRoot, 'state root')
  t.equal(toHex(gb.block.header.authoritySetHash), V.genesis.authoritySetHash, 'authority set hash')
  t.equal(toHex(gb.block.header.txRoot), V.genesis.txRoot, 'tx root')
  t.equal(toHex(genesisBlock(parseGenesis(V.genesis.json)).block.hash), V.genesis.blockHash, 'deterministic')

  // The parameters in state, by hand: nine fields in a fixed order, maxStudyBytes
  // (64-bit) as int64 and maxStudyChunks last (the array grew from seven fields).
  const p = g.params
  const paramsBytes = concatBytes(
    u8(0x99),
    ...[p.blockIntervalMs, p.maxBlockBytes, p.maxTxBytes, p.maxBlockTxs, p.maxClockDriftMs, p.replicationFactor, p.chunkSize].map(uint),
    int64(BigInt(p.maxStudyBytes)),
    uint(p.maxStudyChunks),
  )
  t.equal(toHex(gb.writes.get('params') ?? new Uint8Array(0)), toHex(paramsBytes), 'params layout')
  t.same([p.maxStudyBytes, p.maxStudyChunks], [32 * 1024 ** 3, 32768], 'the study bounds the document names')

  // Authority set hash by hand: sha256(tag || [[id, signKey] for authorities sorted by id]).
  const auth = g.orgs.filter((o) => o.role === 'authority').sort((a, b) => (a.id < b.id ? -1 : 1))
  const setBytes = concatBytes(u8(0x90 | auth.length), ...auth.map((o) => concatBytes(u8(0x92), fixstr(o.id), bin8(o.signKey))))
  t.equal(toHex(tagged('radchain/authority-set/v1', setBytes)), V.genesis.authoritySetHash, 'authority set hash by hand')
  // Block = [header, txs, lastCommit]; an empty tx list (0x90) and an empty
  // lastCommit (bin8 of length 0: c4 00) end it, and the hash covers the header bytes.
  const bytes = fromHex(V.genesis.blockBytes)
  t.equal(bytes[0], 0x93, 'three fields')
  t.equal(toHex(bytes.subarray(bytes.length - 3)), '90c400', 'no transactions, no parent certificate')
  const header = bytes.subarray(1, bytes.length - 3)
  t.equal(header[0], 0x9a, 'the header has ten fields')
  t.equal(toHex(header.subarray(header.length - 34)), toHex(bin8(new Uint8Array(32))), 'lastCommitHash, the last field, is zero at height 0')
  t.equal(toHex(tagged('radchain/block-header/v1', header)), V.genesis.blockHash, 'hash of the header bytes')
  t.equal(toHex(refMerkle([])), V.genesis.txRoot, 'empty tx root')

  const d = decodeBlock(bytes, { chainId: g.chainId, maxBlockBytes: 1 << 20, maxBlockTxs: 10, maxTxBytes: 1 << 14 })
  t.equal(toHex(d.hash), V.genesis.blockHash, 'decodeBlock recomputes the hash')
  t.equal(d.header.time, Date.parse('2024-01-01T00:00:00.000Z'))
  t.equal(d.header.height, 0)
})

t.test('block 1: pinned, and valid on the genesis state', async (t) => {
  const g = parseGenesis(V.genesis.json)
  const gb = genesisBlock(g)
  const state = new Map<string, Uint8Array>()
  applyWrites(state, gb.writes)
  const parent = { header: gb.block.header, hash: gb.block.hash }
  const v0 = V.tx[0]
  if (v0 === undefined) throw new Error('no tx vector')
  const tx = decodeTx(fromHex(v0.bytes), { chainId: g.chainId, maxBytes: 1024 })
  t.equal(proposerFor(state, 0).id, V.block1.proposer, 'the round-0 proposer of block 1')
  const r = buildBlock(state, parent, [tx], { time: V.block1.time, proposer: orgSigner(V.genesis, V.block1.proposer).publicKey, lastCommit: null })
  t.same(r.rejected, [])
  t.equal(toHex(r.block.hash), V.block1.blockHash, 'block hash')
  t.equal(toHex(r.block.bytes), V.block1.blockBytes, 'block bytes')
  t.equal(toHex(r.block.header.stateRoot), V.block1.stateRoot, 'state root')
  t.equal(toHex(r.block.header.txRoot), V.block1.txRoot, 'tx root')
  t.equal(toHex(refMerkle([fromHex(v0.id)])), V.block1.txRoot, 'tx root by hand')
  t.same(
    r.block.txs.map((x) => toHex(x.id)),
    V.block1.txIds,
  )
  t.equal(r.block.lastCommit.length, 0, 'block 1 carries no parent certificate')
  // The proposer's turn, by hand: [lastTurn u64 = 1, jailed = false].
  t.equal(
    toHex(r.writes.get(`r/${V.block1.proposer}`) ?? new Uint8Array(0)),
    toHex(concatBytes(u8(0x92), int64(1n), u8(0xc2))),
    'rotation record of the proposer',
  )
  // The block-time ring, by hand: bt/<height mod 256> = [height u64, time u64].
  t.equal(
    toHex(r.writes.get('bt/1') ?? new Uint8Array(0)),
    toHex(concatBytes(u8(0x92), int64(1n), int64(BigInt(V.block1.time)))),
    'the chain time of block 1 in the ring',
  )

  const d = decodeBlock(fromHex(V.block1.blockBytes), { chainId: g.chainId, maxBlockBytes: 1 << 20, maxBlockTxs: 10, maxTxBytes: 1 << 14 })
  t.equal(toHex(d.hash), V.block1.blockHash)
  t.equal(toHex(applyBlock(state, parent, d).stateRoot), V.block1.stateRoot, 'applyBlock agrees')
  // Header bytes sit between the outer array byte and the tx list [bin8 tx], then an empty lastCommit.
  const bytes = fromHex(V.block1.blockBytes)
  t.equal(bytes[0], 0x93, 'three fields')
  const suffix = concatBytes(u8(0x91), bin8(fromHex(v0.bytes)), u8(0xc4, 0))
  t.equal(toHex(bytes.subarray(bytes.length - suffix.length)), toHex(suffix), 'tx list and empty lastCommit layout')
  const header = bytes.subarray(1, bytes.length - suffix.length)
  t.equal(toHex(header.subarray(header.length - 34)), toHex(bin8(new Uint8Array(32))), 'lastCommitHash is zero at height 1')
  t.equal(toHex(tagged('radchain/block-header/v1', header)), V.block1.blockHash, 'hash of the header bytes')
})

t.test('commit certificate: pinned bytes, verifies against the genesis authorities', async (t) => {
  const c = V.certificate
  const blockHash = fromHex(c.blockHash)
  const sigs = c.signers.map((id) => signPrecommit(orgSigner(V.genesis, id), 'radchain-test', c.height, c.round, blockHash))
  const bytes = encodeCertificate({ height: c.height, round: c.round, blockHash, sigs })
  t.equal(toHex(bytes), c.bytes, 'certificate bytes')
  // By hand: [height int64, round, hash, [[signer, sig]...]], each sig over VOTE tag || [chainId, 'precommit', height, round, hash].
  const vote = concatBytes(u8(0x95), fixstr('radchain-test'), fixstr('precommit'), int64(BigInt(c.height)), u8(c.round), bin8(blockHash))
  const byHand = concatBytes(
    u8(0x94),
    int64(BigInt(c.height)),
    u8(c.round),
    bin8(blockHash),
    u8(0x90 | sigs.length),
    ...sigs.map((s) => concatBytes(u8(0x92), bin8(s.signer), bin8(s.signature))),
  )
  t.equal(toHex(byHand), c.bytes, 'layout by hand')
  for (const s of sigs) t.ok(ed25519.verify(s.signature, concatBytes(utf8('radchain/vote/v1'), u8(0), vote), s.signer), 'signature verifies on @noble/curves')

  const d = decodeCertificate(fromHex(c.bytes))
  t.equal(d.height, c.height)
  t.equal(d.round, c.round)
  t.equal(toHex(d.blockHash), c.blockHash)
  t.same(
    d.sigs.map((s) => toHex(s.signer)),
    c.signers.map((id) => toHex(orgSigner(V.genesis, id).publicKey)),
  )
  t.equal(toHex(encodeCertificate(d)), c.bytes, 're-encodes identically')
  const state = new Map<string, Uint8Array>()
  applyWrites(state, genesisBlock(parseGenesis(V.genesis.json)).writes)
  const set = authoritySet(state)
  t.equal(set.quorum, 3, 'four authorities need three signatures')
  t.doesNotThrow(() => verifyCertificate(d, 'radchain-test', c.height, fromHex(V.block1.blockHash), set))
})

t.test('block 2: pinned, carrying the pinned certificate of block 1 (lastCommitHash = COMMIT-tagged hash of its bytes)', async (t) => {
  const g = parseGenesis(V.genesis.json)
  const gb = genesisBlock(g)
  const state = new Map<string, Uint8Array>()
  applyWrites(state, gb.writes)
  const b1 = decodeBlock(fromHex(V.block1.blockBytes), { chainId: g.chainId, maxBlockBytes: 1 << 20, maxBlockTxs: 10, maxTxBytes: 1 << 14 })
  applyWrites(state, applyBlock(state, { header: gb.block.header, hash: gb.block.hash }, b1).writes)
  const parent: Parent = { header: b1.header, hash: b1.hash }
  t.equal(toHex(b1.hash), V.block1.blockHash)
  t.equal(V.block2.lastCommit, V.certificate.bytes, 'block 2 carries the pinned certificate')
  const cert = decodeCertificate(fromHex(V.block2.lastCommit))
  t.equal(proposerFor(state, 0).id, V.block2.proposer, "the round-0 proposer of block 2 (block 1's proposer moved to the back)")

  const r = buildBlock(state, parent, [], { time: V.block2.time, proposer: orgSigner(V.genesis, V.block2.proposer).publicKey, lastCommit: cert })
  t.equal(toHex(r.block.hash), V.block2.blockHash, 'block hash')
  t.equal(toHex(r.block.bytes), V.block2.blockBytes, 'block bytes')
  t.equal(toHex(r.block.header.stateRoot), V.block2.stateRoot, 'state root')
  t.equal(toHex(r.block.header.txRoot), V.block2.txRoot, 'tx root')
  t.equal(toHex(r.block.header.lastCommitHash), V.block2.lastCommitHash, 'lastCommitHash')
  t.equal(toHex(r.block.lastCommit), V.block2.lastCommit, 'lastCommit bytes')
  t.equal(
    toHex(tagged('radchain/commit/v1', fromHex(V.block2.lastCommit))),
    V.block2.lastCommitHash,
    'lastCommitHash = sha256(COMMIT tag || 0 || certificate bytes)',
  )

  // Layout by hand: [header(10 fields, lastCommitHash last), [], bin16 certificate].
  const bytes = fromHex(V.block2.blockBytes)
  t.equal(bytes[0], 0x93, 'three fields')
  const suffix = concatBytes(u8(0x90), bin16(fromHex(V.block2.lastCommit)))
  t.equal(toHex(bytes.subarray(bytes.length - suffix.length)), toHex(suffix), 'empty tx list, then the certificate bytes')
  const header = bytes.subarray(1, bytes.length - suffix.length)
  t.equal(header[0], 0x9a, 'ten header fields')
  t.equal(toHex(header.subarray(header.length - 34)), toHex(bin8(fromHex(V.block2.lastCommitHash))), 'lastCommitHash is the last header field')
  t.equal(toHex(tagged('radchain/block-header/v1', header)), V.block2.blockHash, 'hash of the header bytes')

  const d = decodeBlock(bytes, { chainId: g.chainId, maxBlockBytes: 1 << 20, maxBlockTxs: 10, maxTxBytes: 1 << 14 })
  t.equal(toHex(d.hash), V.block2.blockHash)
  t.equal(toHex(d.lastCommit), V.block2.lastCommit)
  t.equal(toHex(applyBlock(state, parent, d).stateRoot), V.block2.stateRoot, 'applyBlock agrees (and accepts the certificate)')
})

t.test('merkle roots: pinned, and equal to an independent RFC 6962-shaped reference', async (t) => {
  for (const v of V.merkle) {
    const leaves = Array.from({ length: v.leaves }, (_, i) => leaf(i))
    t.equal(toHex(merkleRoot(leaves)), v.root, `${v.leaves} leaves`)
    t.equal(toHex(refMerkle(leaves)), v.root, `${v.leaves} leaves (reference)`)
  }
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ minLength: 32, maxLength: 32 }), { maxLength: 40 }),
      (leaves) => toHex(merkleRoot(leaves)) === toHex(refMerkle(leaves)),
    ),
    { numRuns: 200 },
  )
  const four = [0, 1, 2, 3].map(leaf)
  t.not(
    toHex(merkleRoot(four.slice(0, 3))),
    toHex(merkleRoot([...four.slice(0, 3), four[2] as Uint8Array])),
    'no odd-leaf duplication: [a,b,c] differs from [a,b,c,c]',
  )
  t.not(toHex(merkleRoot([four[1] as Uint8Array, four[0] as Uint8Array])), toHex(merkleRoot(four.slice(0, 2))), 'order matters')
  const nodeAsLeaf = tagged(
    'radchain/merkle-node/v1',
    tagged('radchain/merkle-leaf/v1', four[0] as Uint8Array),
    tagged('radchain/merkle-leaf/v1', four[1] as Uint8Array),
  )
  t.not(toHex(merkleRoot([nodeAsLeaf])), toHex(merkleRoot(four.slice(0, 2))), 'an inner node is not a valid one-leaf tree')
})

t.test('study.register with a derived owner key, and the consent.set that key signs: pinned bytes, id and signature', async (t) => {
  const { register: r, consent: c } = V.study
  const so = (
    JSON.parse(readFileSync(new URL('../../vectors/study-owner.json', import.meta.url), 'utf8')) as {
      cases: Record<'ed25519Seed' | 'x25519Private' | 'studyId' | 'owner' | 'ephemeral', string>[]
    }
  ).cases[c.patientCase]
  if (so === undefined) throw new Error('no study-owner case')
  t.same([r.payload.studyId, r.payload.owner, r.payload.ownerEphemeral], [so.studyId, so.owner, so.ephemeral], 'owner and ephemeral key from study-owner.json')
  const pl = r.payload
  const payload = {
    ...pl,
    studyId: fromHex(pl.studyId),
    owner: fromHex(pl.owner),
    contentRoot: fromHex(pl.contentRoot),
    studyDigest: fromHex(pl.studyDigest),
    custodianEnvelope: fromHex(pl.custodianEnvelope),
    ownerEnvelope: fromHex(pl.ownerEnvelope),
    demographics: fromHex(pl.demographics),
    ownerEphemeral: fromHex(pl.ownerEphemeral),
  }
  const reg = signTx(new Ed25519Signer(fromHex(r.custodianSeed)), { chainId: 'radchain-test', type: registerStudyTx.name, nonce: 0, payload })
  t.equal(toHex(reg.sender), r.sender)
  t.equal(toHex(reg.bytes), r.bytes, 'register: bytes')
  t.equal(toHex(reg.id), r.id, 'register: id')
  t.equal(toHex(reg.signature), r.signature, 'register: signature')
  // The payload by hand: a fixed array of 12, the ephemeral key last.
  const b = (h: string): Uint8Array => bin8(fromHex(h))
  const wire = concatBytes(
    u8(0x9c),
    b(pl.studyId),
    fixstr(pl.custodian),
    b(pl.owner),
    b(pl.contentRoot),
    int64(BigInt(pl.size)),
    u8(pl.chunkCount),
    u8(0xcd, pl.chunkSize >> 8, pl.chunkSize & 0xff),
    b(pl.studyDigest),
    b(pl.custodianEnvelope),
    b(pl.ownerEnvelope),
    b(pl.demographics),
    b(pl.ownerEphemeral),
  )
  t.ok(
    r.bytes.includes(toHex(wire)),
    'the payload is [studyId, custodian, owner, contentRoot, size, chunkCount, chunkSize, studyDigest, custodianEnvelope, ownerEnvelope, demographics, ownerEphemeral]',
  )
  const dr = decodeTx(fromHex(r.bytes), { chainId: 'radchain-test', maxBytes: 2048 })
  t.same(registerStudyTx.toJSON(dr.payload as typeof payload), { ...pl, extends: null }, 'register: decodes to the payload (extending no study)')

  const keys = new PatientStudyKeys({ identitySeed: fromHex(so.ed25519Seed), encryption: x25519FromPrivate(fromHex(so.x25519Private)) })
  const signer = keys.signerFor(payload.studyId, payload.owner, payload.ownerEphemeral)
  if (signer === null) throw new Error("the study is not the patient's")
  const cons = signTx(signer, { chainId: 'radchain-test', type: consentTx.name, nonce: 0, payload: { ...c.policy, studyId: fromHex(c.policy.studyId) } })
  t.equal(toHex(cons.sender), c.sender)
  t.equal(c.sender, pl.owner, "the consent's sender is the study's owner key")
  t.equal(toHex(cons.bytes), c.bytes, 'consent: bytes')
  t.equal(toHex(cons.id), c.id, 'consent: id')
  t.equal(toHex(cons.signature), c.signature, 'consent: signature')
  const dc = decodeTx(fromHex(c.bytes), { chainId: 'radchain-test', maxBytes: 2048 })
  t.same(consentTx.toJSON(dc.payload as Parameters<typeof consentTx.toJSON>[0]), c.policy, 'consent: decodes to the policy')
  const body = concatBytes(u8(0x95), fixstr('radchain-test'), fixstr('consent.set'), bin8(fromHex(c.sender)), int64(0n))
  t.ok(c.bytes.includes(toHex(body)), 'consent: body layout [chainId, type, sender, nonce, policy]')
  const bodyBytes = fromHex(c.bytes).subarray(3, 3 + fromHex(c.bytes)[2]!)
  t.ok(verifyEd25519(fromHex(c.sender), concatBytes(utf8('radchain/tx-sign/v1'), u8(0), bodyBytes), fromHex(c.signature)), 'the owner key signature verifies')
  t.ok(ed25519.verify(fromHex(c.signature), concatBytes(utf8('radchain/tx-sign/v1'), u8(0), bodyBytes), fromHex(c.sender)), '@noble/curves agrees')
})

t.test('study.register naming the earlier version it extends: pinned bytes, id and signature; a 13th field, the other 12 as before', async (t) => {
  const { register: first, registerExtends: r } = V.study
  const pl = r.payload
  t.same(pl.extends, { studyId: first.payload.studyId, contentRoot: first.payload.contentRoot }, 'it extends the pinned study.register')
  const payload = {
    ...pl,
    studyId: fromHex(pl.studyId),
    contentRoot: fromHex(pl.contentRoot),
    studyDigest: fromHex(pl.studyDigest),
    custodianEnvelope: fromHex(pl.custodianEnvelope),
    demographics: fromHex(pl.demographics),
    extends: { studyId: fromHex(pl.extends.studyId), contentRoot: fromHex(pl.extends.contentRoot) },
  }
  const reg = signTx(new Ed25519Signer(fromHex(r.custodianSeed)), { chainId: 'radchain-test', type: registerStudyTx.name, nonce: r.nonce, payload })
  t.equal(toHex(reg.sender), r.sender)
  t.equal(r.sender, first.sender, 'the same custodian as the version it extends')
  t.equal(toHex(reg.bytes), r.bytes, 'bytes')
  t.equal(toHex(reg.id), r.id, 'id')
  t.equal(toHex(reg.signature), r.signature, 'signature')
  // The payload by hand: a fixed array of 13, the 12 fields as without it (absent keys as empty bins), then [studyId, contentRoot].
  const b = (h: string): Uint8Array => bin8(fromHex(h))
  const empty = u8(0xc4, 0)
  const wire = concatBytes(
    u8(0x9d),
    b(pl.studyId),
    fixstr(pl.custodian),
    empty,
    b(pl.contentRoot),
    int64(BigInt(pl.size)),
    u8(pl.chunkCount),
    u8(0xcd, pl.chunkSize >> 8, pl.chunkSize & 0xff),
    b(pl.studyDigest),
    b(pl.custodianEnvelope),
    empty,
    b(pl.demographics),
    empty,
    u8(0x92),
    b(pl.extends.studyId),
    b(pl.extends.contentRoot),
  )
  t.ok(
    r.bytes.includes(toHex(wire)),
    'the payload is [studyId, custodian, owner, contentRoot, size, chunkCount, chunkSize, studyDigest, custodianEnvelope, ownerEnvelope, demographics, ownerEphemeral, [extends.studyId, extends.contentRoot]]',
  )
  const body = concatBytes(u8(0x95), fixstr('radchain-test'), fixstr('study.register'), bin8(fromHex(r.sender)), int64(BigInt(r.nonce)), wire)
  t.ok(r.bytes.includes(toHex(body)), 'body layout [chainId, type, sender, nonce, payload]')
  t.equal(r.id, toHex(tagged('radchain/tx/v1', body)), 'id: the tagged hash of the body, by hand')
  t.ok(ed25519.verify(fromHex(r.signature), concatBytes(utf8('radchain/tx-sign/v1'), u8(0), body), fromHex(r.sender)), 'the signature verifies (@noble/curves)')
  const dr = decodeTx(fromHex(r.bytes), { chainId: 'radchain-test', maxBytes: 2048 })
  t.same(registerStudyTx.toJSON(dr.payload as typeof payload), pl, 'decodes to the payload')
})
