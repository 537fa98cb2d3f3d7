// Recomputes the pinned chain vectors (test/vectors/chain.json) from src/chain
// and lists every value that differs. Only for a deliberate format change:
// `npm run vectors:chain` shows what would change; `npm run vectors:chain -- --write`
// writes the new values. The inputs (seeds, genesis document, times,
// proposers, signers) are kept; the description must then say what changed
// and why (test/unit/chain/vectors.test.ts checks that it is there).
import { readFile, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import {
  applyBlock,
  applyWrites,
  buildBlock,
  decodeTx,
  encodeCertificate,
  genesisBlock,
  lastCommitHashOf,
  merkleRoot,
  parseGenesis,
  signPrecommit,
  signTx,
  type CommitCertificate,
} from '../src/chain/index.js'
import { Ed25519Signer, sha256 } from '../src/crypto/index.js'
import { fromHex, toHex } from '../src/util/index.js'

type Json = Record<string, unknown>

const file = fileURLToPath(new URL('../test/vectors/chain.json', import.meta.url))
const before = await readFile(file, 'utf8')
const v = JSON.parse(before) as {
  tx: Json[]
  genesis: Json & { orgSeeds: Record<string, { signSeed: string }>; json: unknown }
  block1: Json & { time: number; proposer: string }
  certificate: Json & { height: number; round: number; signers: string[] }
  block2: Json & { time: number; proposer: string }
  merkle: { leaves: number; root: string }[]
}
const changed: string[] = []
function set(obj: Json, where: string, key: string, value: unknown): void {
  if (JSON.stringify(obj[key]) !== JSON.stringify(value)) changed.push(`${where}.${key}`)
  obj[key] = value
}
const signerOf = (id: string): Ed25519Signer => {
  const s = v.genesis.orgSeeds[id]
  if (s === undefined) throw new Error(`no seed for ${id}`)
  return new Ed25519Signer(fromHex(s.signSeed))
}

for (const [i, x] of v.tx.entries()) {
  const tx = signTx(new Ed25519Signer(fromHex(x.seed as string)), {
    chainId: x.chainId as string,
    type: 'note',
    nonce: x.nonce as number,
    payload: { text: x.text as string },
  })
  set(x, `tx[${i}]`, 'bytes', toHex(tx.bytes))
  set(x, `tx[${i}]`, 'id', toHex(tx.id))
  set(x, `tx[${i}]`, 'signature', toHex(tx.signature))
}

const g = parseGenesis(v.genesis.json)
const gb = genesisBlock(g)
set(v.genesis, 'genesis', 'blockHash', toHex(gb.block.hash))
set(v.genesis, 'genesis', 'blockBytes', toHex(gb.block.bytes))
set(v.genesis, 'genesis', 'stateRoot', toHex(gb.block.header.stateRoot))
set(v.genesis, 'genesis', 'authoritySetHash', toHex(gb.block.header.authoritySetHash))
set(v.genesis, 'genesis', 'txRoot', toHex(gb.block.header.txRoot))

const state = new Map<string, Uint8Array>()
applyWrites(state, gb.writes)
const tx0 = decodeTx(fromHex(v.tx[0]?.bytes as string), { chainId: g.chainId, maxBytes: 1024 })
const b1 = buildBlock(state, { header: gb.block.header, hash: gb.block.hash }, [tx0], {
  time: v.block1.time,
  proposer: signerOf(v.block1.proposer).publicKey,
  lastCommit: null,
})
if (b1.rejected.length > 0) throw new Error('block 1 refused its transaction')
set(v.block1, 'block1', 'txIds', [toHex(tx0.id)])
set(v.block1, 'block1', 'blockHash', toHex(b1.block.hash))
set(v.block1, 'block1', 'blockBytes', toHex(b1.block.bytes))
set(v.block1, 'block1', 'stateRoot', toHex(b1.block.header.stateRoot))
set(v.block1, 'block1', 'txRoot', toHex(b1.block.header.txRoot))

const c = v.certificate
const cert: CommitCertificate = {
  height: c.height,
  round: c.round,
  blockHash: b1.block.hash,
  sigs: c.signers.map((id) => signPrecommit(signerOf(id), g.chainId, c.height, c.round, b1.block.hash)),
}
set(c, 'certificate', 'blockHash', toHex(b1.block.hash))
set(c, 'certificate', 'bytes', toHex(encodeCertificate(cert)))

applyWrites(state, applyBlock(state, { header: gb.block.header, hash: gb.block.hash }, b1.block).writes)
const b2 = buildBlock(state, { header: b1.block.header, hash: b1.block.hash }, [], {
  time: v.block2.time,
  proposer: signerOf(v.block2.proposer).publicKey,
  lastCommit: cert,
})
set(v.block2, 'block2', 'lastCommit', toHex(b2.block.lastCommit))
set(v.block2, 'block2', 'lastCommitHash', toHex(lastCommitHashOf(b2.block.lastCommit)))
set(v.block2, 'block2', 'blockHash', toHex(b2.block.hash))
set(v.block2, 'block2', 'blockBytes', toHex(b2.block.bytes))
set(v.block2, 'block2', 'stateRoot', toHex(b2.block.header.stateRoot))
set(v.block2, 'block2', 'txRoot', toHex(b2.block.header.txRoot))

for (const [i, m] of v.merkle.entries()) {
  const leaves = Array.from({ length: m.leaves }, (_, j) => sha256(new Uint8Array([j])))
  set(m, `merkle[${i}]`, 'root', toHex(merkleRoot(leaves)))
}

const write = process.argv.includes('--write')
process.stdout.write(
  changed.length === 0 ? 'chain vectors: no value differs\n' : `chain vectors: ${changed.length} value(s) differ:\n  ${changed.join('\n  ')}\n`,
)
if (changed.length > 0 && write) {
  await writeFile(file, JSON.stringify(v, null, 2) + '\n')
  process.stdout.write('written: now say in its description what changed and why\n')
} else if (changed.length > 0) process.stdout.write('nothing written (run with --write to write them)\n')
