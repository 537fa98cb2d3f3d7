// Fuzzing the chain's decoders: transactions of every type, blocks, commit
// certificates, chain parameters, organization records and genesis files.
import t from 'tap'
import fc from 'fast-check'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  BlockError,
  CodecError,
  DEFAULT_PARAMS,
  GenesisError,
  TX_TYPES,
  TxError,
  decodeBlock,
  decodeCanonical,
  decodeCertificate,
  decodeTx,
  encode,
  encodeCertificate,
  genesisToJSON,
  loadGenesis,
  makeBlock,
  orgFromWire,
  orgToWire,
  paramsFromWire,
  paramsToWire,
  parseGenesis,
  signTx,
  type Encodable,
  type Tx,
} from '../../src/chain/index.js'
import { DOMAIN, signingBytes } from '../../src/crypto/index.js'
import { equalBytes, utf8 } from '../../src/util/index.js'
import { CHAIN_ID, advance, makeChain, testSigner } from '../unit/chain/fixtures.js'
import { codeOf, encodableArb, jsonReshaped, mutated, mutatedOneOf, noteSeed, params, reshaped, typedOrValue, typedOrValueAsync, wireBytesArb } from './fuzz.js'
import { payloadSeeds, signedSeeds } from './seeds.js'

noteSeed(t)

const signer = testSigner('auth-0')
const TX_OPTS = { chainId: CHAIN_ID, maxBytes: 16 * 1024 }
const seeds = await payloadSeeds()
const txs = signedSeeds(seeds, signer)

t.test('every transaction seed decodes to itself (the starting point of the mutations)', async (t) => {
  for (const tx of txs) {
    const back = decodeTx(tx.bytes, TX_OPTS)
    t.ok(equalBytes(back.id, tx.id) && back.type === tx.type, tx.type)
  }
})

t.test('decodeTx of any bytes: a transaction or a TxError', async (t) => {
  fc.assert(
    fc.property(wireBytesArb, fc.boolean(), (b, verify) => {
      typedOrValue(() => decodeTx(b, { ...TX_OPTS, verify }), [TxError])
    }),
    params(2000),
  )
  t.pass('no other error escaped')
})

t.test('decodeTx of mutated transactions of every type: a transaction with the same bytes, or a TxError', async (t) => {
  fc.assert(
    fc.property(mutatedOneOf(txs.map((x) => x.bytes)), fc.boolean(), (b, verify) => {
      const tx = typedOrValue(() => decodeTx(b, { ...TX_OPTS, verify }), [TxError])
      return tx === undefined || equalBytes(tx.bytes, b)
    }),
    params(2000),
  )
  t.pass('no other error escaped')
})

// A transaction's wire form is [body, signature] with body = [chainId, type, sender, nonce, payload] (src/chain/tx.ts).

/** The decoded body of a transaction. */
function bodyOf(tx: Tx): Encodable[] {
  return decodeCanonical((decodeCanonical(tx.bytes) as unknown[])[0] as Uint8Array) as Encodable[]
}

/** The wire value of a transaction's payload. */
function payloadWire(tx: Tx): unknown {
  return bodyOf(tx)[4]
}

/** `tx` with another payload wire value in its body, signed again. */
function withPayload(tx: Tx, payload: unknown): Uint8Array {
  const b = encode([...bodyOf(tx).slice(0, 4), payload as Encodable])
  return encode([b, signer.sign(signingBytes(DOMAIN.TX_SIGN, b))])
}

t.test('payloads of every type with fields changed in kind-preserving ways: decoded and re-encoded to the same bytes, or TX_MALFORMED', async (t) => {
  const decoded = new Map<string, number>()
  fc.assert(
    fc.property(
      fc.constantFrom(...txs).chain((tx) => fc.tuple(fc.constant(tx), reshaped(payloadWire(tx)))),
      ([tx, payload]) => {
        const b = withPayload(tx, payload)
        const code = codeOf(() => decodeTx(b, TX_OPTS), [TxError])
        if (code !== undefined) return code === 'TX_MALFORMED'
        const back = decodeTx(b, TX_OPTS)
        decoded.set(back.type, (decoded.get(back.type) ?? 0) + 1)
        // Canonical: the type's own encoder gives back the very bytes that were signed.
        const again = signTx(signer, { chainId: back.chainId, type: back.type, nonce: back.nonce, payload: back.payload })
        return equalBytes(again.bytes, b)
      },
    ),
    params(1500),
  )
  t.equal(decoded.size, TX_TYPES.size, 'changed payloads of every type were accepted too, and round-tripped')
})

// A two-block chain gives real headers and a real parent certificate; the blocks below carry the seed transactions.
const chain = makeChain({ authorities: 4 })
advance(chain, [])
const b2 = advance(chain, [])
const cert = encodeCertificate(chain.lastCommit ?? (undefined as never))
const limits = chain.genesis.params
const BLOCK_OPTS = { chainId: CHAIN_ID, maxBlockBytes: limits.maxBlockBytes, maxBlockTxs: 64, maxTxBytes: limits.maxTxBytes }
const blocks = [
  makeBlock(b2.block.header, txs.slice(0, 6), cert),
  makeBlock(b2.block.header, [], new Uint8Array(0)),
  makeBlock(b2.block.header, txs.slice(6), cert),
]

t.test('decodeBlock of any bytes and of mutated blocks: a block with the same bytes, or a BlockError', async (t) => {
  fc.assert(
    fc.property(fc.oneof(wireBytesArb, mutatedOneOf(blocks.map((b) => b.bytes))), fc.boolean(), (b, verify) => {
      const block = typedOrValue(() => decodeBlock(b, { ...BLOCK_OPTS, verify }), [BlockError])
      return block === undefined || equalBytes(makeBlock(block.header, block.txs, block.lastCommit).bytes, b)
    }),
    params(1000),
  )
  t.pass('no other error escaped')
})

t.test('blocks with header fields changed in kind: decoded and rebuilt to the same bytes, or a BlockError', async (t) => {
  fc.assert(
    fc.property(
      fc.constantFrom(...blocks).chain((blk) => reshaped(decodeCanonical(blk.bytes))),
      (wire) => {
        const b = encode(wire as Encodable)
        const block = typedOrValue(() => decodeBlock(b, BLOCK_OPTS), [BlockError])
        return block === undefined || equalBytes(makeBlock(block.header, block.txs, block.lastCommit).bytes, b)
      },
    ),
    params(500),
  )
  t.pass('no other error escaped')
})

t.test('decodeCertificate of any, mutated and reshaped bytes: a certificate that re-encodes to them, or a BlockError', async (t) => {
  fc.assert(
    fc.property(
      fc.oneof(
        wireBytesArb,
        mutated(cert),
        reshaped(decodeCanonical(cert)).map((v) => encode(v as Encodable)),
      ),
      (b) => {
        const c = typedOrValue(() => decodeCertificate(b), [BlockError])
        return c === undefined || equalBytes(encodeCertificate(c), b)
      },
    ),
    params(2000),
  )
  t.pass('no other error escaped')
})

t.test('paramsFromWire of any value and of changed parameters: parameters that encode back to the input, or a CodecError', async (t) => {
  fc.assert(
    fc.property(fc.oneof(encodableArb, reshaped(paramsToWire(DEFAULT_PARAMS))), (wire) => {
      const p = typedOrValue(() => paramsFromWire(wire), [CodecError])
      return p === undefined || equalBytes(encode(paramsToWire(p)), encode(wire as Encodable))
    }),
    params(2000),
  )
  t.pass('no other error escaped')
})

t.test('orgFromWire of any value and of changed records: a record that encodes back to the input, or a CodecError', async (t) => {
  const org = chain.genesis.orgs[0]
  if (org === undefined) throw new Error('no organization')
  fc.assert(
    fc.property(fc.oneof(encodableArb, reshaped(orgToWire(org))), (wire) => {
      const o = typedOrValue(() => orgFromWire(wire), [CodecError])
      return o === undefined || equalBytes(encode(orgToWire(o)), encode(wire as Encodable))
    }),
    params(2000),
  )
  t.pass('no other error escaped')
})

const genesis = genesisToJSON(chain.genesis)

t.test('parseGenesis of changed genesis documents: a genesis, or a GenesisError', async (t) => {
  fc.assert(
    fc.property(fc.oneof(jsonReshaped(genesis), fc.jsonValue()), (json) => {
      const g = typedOrValue(() => parseGenesis(json), [GenesisError])
      // What parses is a valid genesis: parsing its JSON form again gives the same.
      return g === undefined || JSON.stringify(genesisToJSON(parseGenesis(genesisToJSON(g)))) === JSON.stringify(genesisToJSON(g))
    }),
    params(2000),
  )
  t.pass('no other error escaped')
})

t.test('loadGenesis of damaged genesis files: a genesis, or a GenesisError', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-fuzz-genesis-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'genesis.json')
  const text = utf8(JSON.stringify(genesis, null, 2))
  await fc.assert(
    fc.asyncProperty(fc.oneof(mutated(text, 4), fc.uint8Array({ maxLength: 200 })), async (b) => {
      await writeFile(path, b)
      await typedOrValueAsync(() => loadGenesis(path), [GenesisError])
    }),
    params(300, 5),
  )
  t.pass('no other error escaped')
})
