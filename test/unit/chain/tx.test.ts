import t, { type Test } from 'tap'
import fc from 'fast-check'
import { DOMAIN, signingBytes, taggedHash, type Ed25519Signer } from '../../../src/crypto/index.js'
import { toHex, equalBytes } from '../../../src/util/index.js'
import {
  TxError,
  decodeTx,
  encode,
  signTx,
  txToJSON,
  verifyTxSignature,
  u64,
  MAX_NOTE_BYTES,
  type Encodable,
  type OrgAction,
  type Tx,
} from '../../../src/chain/index.js'
import { CHAIN_ID, codeOf, note, testSigner } from './fixtures.js'

const alice = testSigner('alice')
const bob = testSigner('bob')
const OPTS = { chainId: CHAIN_ID, maxBytes: 16 * 1024 }

/** Wire bytes of a hand-built body, signed by `signer` (or carrying `sig`). */
function wrap(body: Encodable, signer: Ed25519Signer, sig?: Uint8Array): Uint8Array {
  const b = encode(body)
  return encode([b, sig ?? signer.sign(signingBytes(DOMAIN.TX_SIGN, b))])
}

function noteBody(over: Partial<{ chainId: Encodable; type: Encodable; sender: Encodable; nonce: Encodable; payload: Encodable }> = {}): Encodable {
  return [over.chainId ?? CHAIN_ID, over.type ?? 'note', over.sender ?? alice.publicKey, over.nonce ?? 0n, over.payload ?? ['hi']]
}

function sameTx(t: Test, got: Tx, want: Tx): void {
  t.equal(got.chainId, want.chainId, 'chainId')
  t.equal(got.type, want.type, 'type')
  t.equal(toHex(got.sender), toHex(want.sender), 'sender')
  t.equal(got.nonce, want.nonce, 'nonce')
  t.equal(toHex(got.id), toHex(want.id), 'id')
  t.equal(toHex(got.signature), toHex(want.signature), 'signature')
  t.equal(toHex(got.bytes), toHex(want.bytes), 'bytes')
  t.same(txToJSON(got), txToJSON(want), 'JSON view')
}

t.test('signTx then decodeTx gives back every field (property over text and nonce)', async (t) => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 300 }), fc.maxSafeNat(), fc.boolean(), (text, nonce, useBob) => {
      const signer = useBob ? bob : alice
      const tx = signTx(signer, { chainId: CHAIN_ID, type: 'note', nonce, payload: { text } })
      const d = decodeTx(tx.bytes, OPTS)
      return (
        d.chainId === CHAIN_ID &&
        d.type === 'note' &&
        d.nonce === nonce &&
        equalBytes(d.sender, signer.publicKey) &&
        (d.payload as { text: string }).text === text &&
        equalBytes(d.id, tx.id) &&
        equalBytes(d.signature, tx.signature) &&
        equalBytes(d.bytes, tx.bytes) &&
        verifyTxSignature(d)
      )
    }),
    { numRuns: 200 },
  )
  t.pass('200 random notes')
})

t.test('round trip of every org action', async (t) => {
  const org = {
    id: 'new-org',
    name: 'New Org',
    role: 'member' as const,
    signKey: bob.publicKey,
    encKey: new Uint8Array(32).fill(7),
    addrs: ['/ip4/10.0.0.1/tcp/1'],
  }
  const actions: OrgAction[] = [
    { kind: 'admit', org },
    { kind: 'remove', id: 'old-org' },
    { kind: 'rekey', id: 'new-org', signKey: alice.publicKey, encKey: new Uint8Array(32).fill(9) },
  ]
  for (const a of actions) {
    const tx = signTx(alice, { chainId: CHAIN_ID, type: 'org', nonce: 3, payload: a })
    const d = decodeTx(tx.bytes, OPTS)
    sameTx(t, d, tx)
    t.same(txToJSON(d).payload, txToJSON(tx).payload, `${a.kind} payload`)
  }
})

t.test('id is sha256(TX tag || body) and does not depend on the signature bytes', async (t) => {
  const tx = note(alice, 7, 'id test')
  const body = encode(noteBody({ nonce: 7n, payload: ['id test'] }))
  t.equal(toHex(tx.id), toHex(taggedHash(DOMAIN.TX, body)), 'id from the body bytes alone')
  t.equal(toHex(tx.bytes), toHex(encode([body, tx.signature])), 'wire form [body, signature]')
  for (const sig of [new Uint8Array(64), new Uint8Array(64).fill(0xff), note(alice, 8).signature]) {
    const d = decodeTx(encode([body, sig]), { ...OPTS, verify: false })
    t.equal(toHex(d.id), toHex(tx.id), 'same id with other signature bytes')
    t.equal(verifyTxSignature(d), false, 'but the signature does not verify')
  }
  t.not(toHex(note(alice, 8, 'id test').id), toHex(tx.id), 'nonce changes the id')
  t.not(toHex(note(alice, 7, 'id test!').id), toHex(tx.id), 'payload changes the id')
  t.not(toHex(note(bob, 7, 'id test').id), toHex(tx.id), 'sender changes the id')
  t.not(toHex(note(alice, 7, 'id test', 'other-chain').id), toHex(tx.id), 'chain changes the id')
})

t.test('bad signatures: TX_BAD_SIGNATURE', async (t) => {
  const tx = note(alice, 0)
  const body = encode(noteBody({ payload: ['hello'] }))
  const bad = { name: 'TxError', code: 'TX_BAD_SIGNATURE' }
  for (let bit = 0; bit < 512; bit += 37) {
    const sig = new Uint8Array(tx.signature)
    sig[bit >> 3] = (sig[bit >> 3] as number) ^ (1 << (bit & 7))
    t.throws(() => decodeTx(encode([body, sig]), OPTS), bad, `signature bit ${bit} flipped`)
  }
  t.throws(() => decodeTx(wrap(noteBody({ payload: ['hello'] }), bob), OPTS), bad, 'signed by a key other than the sender')
  t.throws(() => decodeTx(encode([body, note(alice, 1).signature]), OPTS), bad, 'signature of another transaction')
  const plain = alice.sign(body)
  t.throws(() => decodeTx(encode([body, plain]), OPTS), bad, 'signature without the TX_SIGN domain tag')
  t.throws(() => decodeTx(wrap(noteBody({ sender: new Uint8Array(32), payload: ['hello'] }), alice), OPTS), bad, 'all-zero sender key')
  const e = (() => {
    try {
      decodeTx(wrap(noteBody(), bob), OPTS)
    } catch (err) {
      return err
    }
  })()
  t.ok(e instanceof TxError && e.penalize, 'penalizes the peer')
  t.doesNotThrow(() => decodeTx(wrap(noteBody(), bob), { ...OPTS, verify: false }), 'verify: false skips the check')
})

t.test('wrong chain: TX_WRONG_CHAIN', async (t) => {
  const tx = note(alice, 0, 'x', 'radchain-other')
  t.throws(() => decodeTx(tx.bytes, OPTS), { name: 'TxError', code: 'TX_WRONG_CHAIN' })
  t.equal(decodeTx(tx.bytes, { ...OPTS, chainId: 'radchain-other' }).chainId, 'radchain-other')
  t.throws(() => decodeTx(note(alice, 0, 'x', '').bytes, OPTS), { name: 'TxError', code: 'TX_WRONG_CHAIN' }, 'empty chain id')
})

t.test('size limit: TX_TOO_LARGE above maxBytes, accepted at exactly maxBytes', async (t) => {
  const tx = note(alice, 0, 'x'.repeat(1000))
  t.doesNotThrow(() => decodeTx(tx.bytes, { ...OPTS, maxBytes: tx.bytes.length }))
  t.throws(() => decodeTx(tx.bytes, { ...OPTS, maxBytes: tx.bytes.length - 1 }), { name: 'TxError', code: 'TX_TOO_LARGE' })
  t.throws(() => decodeTx(new Uint8Array(20_000), OPTS), { name: 'TxError', code: 'TX_TOO_LARGE' }, 'size checked before parsing')
})

t.test('unknown type: TX_UNKNOWN_TYPE', async (t) => {
  t.throws(() => decodeTx(wrap(noteBody({ type: 'transfer' }), alice), OPTS), { name: 'TxError', code: 'TX_UNKNOWN_TYPE' })
  t.throws(() => decodeTx(wrap(noteBody({ type: 'Note' }), alice), OPTS), { name: 'TxError', code: 'TX_UNKNOWN_TYPE' }, 'names are case-sensitive')
  t.throws(() => signTx(alice, { chainId: CHAIN_ID, type: 'transfer', nonce: 0, payload: {} }), { name: 'TxError', code: 'TX_UNKNOWN_TYPE' }, 'signTx too')
})

t.test('malformed transactions: TX_MALFORMED', async (t) => {
  const good = note(alice, 0, 'hi')
  const body = encode(noteBody())
  const sig = alice.sign(signingBytes(DOMAIN.TX_SIGN, body))
  const hexBody = toHex(body)
  const cases: [Uint8Array, string][] = [
    [encode('tx'), 'outer is a string'],
    [encode([body]), 'outer has one field'],
    [encode([body, sig, null]), 'outer has three fields'],
    [encode([[...body], sig]), 'body is an array, not bytes'],
    [encode([body, sig.subarray(0, 63)]), 'signature of 63 bytes'],
    [encode([body, new Uint8Array([...sig, 0])]), 'signature of 65 bytes'],
    [Buffer.from('92c5' + body.length.toString(16).padStart(4, '0') + hexBody + 'c440' + toHex(sig), 'hex'), 'body as bin16 where bin8 suffices'],
    [Buffer.from(toHex(good.bytes) + '00', 'hex'), 'trailing byte'],
    [good.bytes.subarray(0, good.bytes.length - 1), 'truncated'],
    [wrap(body, alice), 'body is bin(bin(array)), not bin(array)'],
    [wrap(noteBody({ sender: alice.publicKey.subarray(0, 31) }), alice), 'sender of 31 bytes'],
    [wrap(noteBody({ nonce: 0 }), alice), 'nonce as a plain number'],
    [wrap(noteBody({ nonce: -1n }), alice), 'negative nonce'],
    [wrap(noteBody({ nonce: 2n ** 53n }), alice), 'nonce beyond 2^53 - 1'],
    [wrap(noteBody({ chainId: 5 }), alice), 'chain id not a string'],
    [wrap(noteBody({ chainId: 'c'.repeat(129) }), alice), 'chain id over 128 bytes'],
    [wrap(noteBody({ type: 7 }), alice), 'type not a string'],
    [wrap([CHAIN_ID, 'note', alice.publicKey, 0n], alice), 'body of four fields'],
    [wrap([...(noteBody() as Encodable[]), null], alice), 'body of six fields'],
    [wrap(noteBody({ payload: [] }), alice), 'note payload empty'],
    [wrap(noteBody({ payload: ['a', 'b'] }), alice), 'note payload of two fields'],
    [wrap(noteBody({ payload: [1] }), alice), 'note text not a string'],
    [wrap(noteBody({ payload: 'hi' }), alice), 'note payload not an array'],
    [wrap(noteBody({ payload: ['x'.repeat(MAX_NOTE_BYTES + 1)] }), alice), 'note text over MAX_NOTE_BYTES'],
    [
      wrap(noteBody({ type: 'org', payload: ['admit', ['UPPER', 'n', 'member', new Uint8Array(32), new Uint8Array(32), []]] }), alice),
      'org id not matching ORG_ID_RE',
    ],
    [wrap(noteBody({ type: 'org', payload: ['admit', ['ok', 'n', 'king', new Uint8Array(32), new Uint8Array(32), []]] }), alice), 'org role unknown'],
    [wrap(noteBody({ type: 'org', payload: ['remove', 'a', 'b'] }), alice), 'org remove of three fields'],
    [wrap(noteBody({ type: 'org', payload: ['merge', 'a'] }), alice), 'org action unknown'],
    [wrap(noteBody({ type: 'org', payload: ['rekey', 'a', new Uint8Array(31), new Uint8Array(32)] }), alice), 'org rekey key of 31 bytes'],
    [Buffer.from('81a17801', 'hex'), 'a map'],
  ]
  for (const [bytes, what] of cases)
    t.equal(
      codeOf(() => decodeTx(bytes, OPTS)),
      'TX_MALFORMED',
      what,
    )
  // Non-canonical body: nonce 0 written as uint64 instead of int64.
  const nonCanon = Buffer.from(hexBody.replace('d30000000000000000', 'cf0000000000000000'), 'hex')
  t.equal(
    codeOf(() => decodeTx(encode([nonCanon, alice.sign(signingBytes(DOMAIN.TX_SIGN, nonCanon))]), OPTS)),
    'TX_MALFORMED',
    'non-canonical nonce inside a validly signed body',
  )
  t.equal(
    codeOf(() => decodeTx(new Uint8Array(0), OPTS)),
    'TX_MALFORMED',
    'empty input',
  )
  t.equal(toHex(decodeTx(encode([body, sig]), OPTS).id), toHex(good.id), 'the unmodified hand-built body is valid')
})

t.test('any single-byte change to a valid transaction is refused with a TxError', async (t) => {
  const tx = note(alice, 5, 'mutate me')
  const seen = new Set<string>()
  fc.assert(
    fc.property(fc.nat({ max: tx.bytes.length - 1 }), fc.integer({ min: 1, max: 255 }), (i, x) => {
      const b = new Uint8Array(tx.bytes)
      b[i] = (b[i] as number) ^ x
      try {
        decodeTx(b, OPTS)
        return false
      } catch (err) {
        if (!(err instanceof TxError)) return false
        seen.add(err.code)
        return true
      }
    }),
    { numRuns: 1500 },
  )
  t.ok(seen.has('TX_MALFORMED') && seen.has('TX_BAD_SIGNATURE'), `codes seen: ${[...seen].join(', ')}`)
})

t.test('random bytes: decodeTx throws only TxError', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
      try {
        decodeTx(b, OPTS)
        return false
      } catch (err) {
        return err instanceof TxError
      }
    }),
    { numRuns: 2000 },
  )
  t.pass('2000 random inputs')
})

t.test('u64 nonce is encoded as int64 on the wire', async (t) => {
  const tx = note(alice, 2 ** 40)
  t.ok(toHex(tx.bytes).includes('d3' + toHex(new Uint8Array(Buffer.from((2n ** 40n).toString(16).padStart(16, '0'), 'hex')))), 'd3 0000010000000000')
  t.equal(decodeTx(tx.bytes, OPTS).nonce, 2 ** 40)
  t.equal(toHex(encode(u64(2 ** 40))), 'd30000010000000000')
})
