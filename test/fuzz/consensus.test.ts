// Fuzzing the consensus decoders: messages (src/consensus/messages.ts) and the write-ahead log reader (src/consensus/wal.ts).
import t from 'tap'
import fc from 'fast-check'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConsensusWal, decodeMessage, encodeMessage, signProposal, type ConsensusMessage, type WalEntry } from '../../src/consensus/index.js'
import { CodecError, decodeCanonical, encode, signVote, type Encodable } from '../../src/chain/index.js'
import { equalBytes, toHex } from '../../src/util/index.js'
import { CHAIN_ID, testSigner } from '../unit/chain/fixtures.js'
import { mutated, mutatedOneOf, noteSeed, params, reshaped, typedOrValue, typedOrValueAsync, wireBytesArb } from './fuzz.js'
import { bytesOf } from './seeds.js'

noteSeed(t)

const MAX_BLOCK = 64 * 1024
const signer = testSigner('auth-0')
const hash = bytesOf('block', 32)
const messages: ConsensusMessage[] = [
  { type: 'vote', vote: signVote(signer, CHAIN_ID, 'prevote', 7, 2, hash) },
  { type: 'vote', vote: signVote(signer, CHAIN_ID, 'precommit', 7, 0, null) },
  {
    type: 'proposal',
    proposal: signProposal(signer, CHAIN_ID, { height: 7, round: 1, validRound: -1, blockHash: hash, blockBytes: bytesOf('blockbytes', 300) }),
  },
  { type: 'proposal', proposal: signProposal(signer, CHAIN_ID, { height: 2 ** 40, round: 3, validRound: 2, blockHash: hash, blockBytes: new Uint8Array(0) }) },
]
const encoded = messages.map(encodeMessage)

t.test('decodeMessage of any, mutated and reshaped messages: a message that encodes back to the input, or a CodecError', async (t) => {
  fc.assert(
    fc.property(
      fc.oneof(
        wireBytesArb,
        mutatedOneOf(encoded),
        fc.constantFrom(...encoded).chain((b) => reshaped(decodeCanonical(b)).map((v) => encode(v as Encodable))),
      ),
      (b) => {
        const m = typedOrValue(() => decodeMessage(b, MAX_BLOCK), [CodecError])
        return m === undefined || equalBytes(encodeMessage(m), b)
      },
    ),
    params(3000),
  )
  t.pass('no other error escaped')
})

function view(e: WalEntry): string {
  return JSON.stringify(e.kind === 'message' ? [e.height, e.kind, toHex(e.bytes)] : [e.height, e.kind, e.round, toHex(e.blockBytes)])
}

const walEntries: WalEntry[] = [
  ...encoded.map((bytes, i): WalEntry => ({ height: 7 + i, kind: 'message', bytes })),
  { height: 9, kind: 'lock', round: 2, blockBytes: bytesOf('locked', 500) },
  { height: 10, kind: 'message', bytes: new Uint8Array(0) },
]

t.test('a damaged write-ahead log opens with the entries before the damage, and keeps working', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-fuzz-wal-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'consensus.wal')
  const wal = await ConsensusWal.open(path)
  for (const e of walEntries) await wal.append(e)
  await wal.close()
  const whole = new Uint8Array(await readFile(path))
  const want = walEntries.map(view)
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        mutated(whole, 4).map((b) => ({ b, damaged: true })),
        fc.uint8Array({ maxLength: 300 }).map((b) => ({ b, damaged: false })),
      ),
      async ({ b, damaged }) => {
        await writeFile(path, b)
        const w = await typedOrValueAsync(() => ConsensusWal.open(path), [])
        if (w === undefined) return false
        try {
          const got = w.entries().map(view)
          // Replay stops at the first frame that is not whole and intact: what it returns
          // of a damaged log is a prefix of what was written (a changed frame keeping its
          // 4-byte checksum is a 2^-32 chance).
          if (damaged && got.some((v, i) => v !== want[i])) return false
          await w.append(walEntries[0] as WalEntry)
        } finally {
          await w.close()
        }
        // The damaged tail was cut: the log reopens with what it held plus the new entry.
        const again = await ConsensusWal.open(path)
        await again.close()
        const n = again.entries().length
        return n >= 1 && again.entries()[n - 1] !== undefined && view(again.entries()[n - 1] as WalEntry) === view(walEntries[0] as WalEntry)
      },
    ),
    params(200, 10),
  )
  t.pass('every damaged log opened')
})
