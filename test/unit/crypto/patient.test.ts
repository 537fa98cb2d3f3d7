import t from 'tap'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  PATIENT_KEY_PREFIX,
  encodePatientPublicKey,
  generatePatientKeys,
  loadKeystore,
  parsePatientPublicKey,
  patientKeyId,
  patientPublicKey,
  readPatientPublicKey,
  saveKeystore,
  unwrapKey,
  wrapKey,
  mlkemFromX25519Private,
} from '../../../src/crypto/index.js'

t.test('a patient public key round-trips through its text form and wraps keys the patient can unwrap', async (t) => {
  const { keys, secret, publicKey } = generatePatientKeys()
  const text = encodePatientPublicKey(publicKey)
  t.ok(text.startsWith(PATIENT_KEY_PREFIX))
  t.equal(text.length, PATIENT_KEY_PREFIX.length + Math.ceil(((32 + 32 + 1184) * 4) / 3), 'base64url of 1,248 bytes')
  const back = parsePatientPublicKey(` ${text}\n`)
  t.same(back, publicKey, 'surrounding whitespace is ignored')
  t.equal(
    patientKeyId(back),
    Buffer.from(keys.signer.publicKey).toString('hex'),
    'the id is the Ed25519 key (never on the ledger: each study has its own owner key)',
  )

  // Through a keystore: the same keys come back and open what was wrapped to the public key.
  const dir = await mkdtemp(join(tmpdir(), 'radchain-patient-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await saveKeystore(join(dir, 'p.key'), secret, 'pw', { N: 1024, r: 8, p: 1 })
  const loaded = await loadKeystore(join(dir, 'p.key'), 'pw')
  t.same(patientPublicKey(loaded), publicKey)
  const dataKey = new Uint8Array(32).fill(7)
  const ctx = new TextEncoder().encode('ctx')
  const env = wrapKey(dataKey, { x25519: back.x25519, mlkem: back.mlkem }, ctx)
  t.same(
    unwrapKey(env, { x25519Priv: loaded.encryption.privateKey, mlkemSecret: mlkemFromX25519Private(loaded.encryption.privateKey).secretKey }, ctx),
    dataKey,
  )

  await writeFile(join(dir, 'p.pub'), text + '\n')
  t.same(await readPatientPublicKey(join(dir, 'p.pub')), publicKey, 'from a .pub file')
  t.same(await readPatientPublicKey(text), publicKey, 'from the text itself')
  await t.rejects(readPatientPublicKey(join(dir, 'missing.pub')), { code: 'PATIENT_BAD_KEY', message: /nor a readable file/ })
})

t.test('malformed patient keys are refused with the reason', async (t) => {
  const { publicKey } = generatePatientKeys()
  const good = encodePatientPublicKey(publicKey)
  const raw = Buffer.from(good.slice(PATIENT_KEY_PREFIX.length), 'base64url')
  const withSign = (sign: Uint8Array): string => {
    const b = Buffer.from(raw)
    b.set(sign, 0)
    return PATIENT_KEY_PREFIX + b.toString('base64url')
  }
  const identity = new Uint8Array(32)
  identity[0] = 1 // the Ed25519 identity point: small order
  const cases: [string, string, RegExp][] = [
    ['no prefix', good.slice(PATIENT_KEY_PREFIX.length), /expected text starting with/],
    ['an organization key in hex', 'ab'.repeat(32), /expected text starting with/],
    ['not base64url', PATIENT_KEY_PREFIX + 'a+b/c', /not base64url/],
    ['too short', good.slice(0, -10), /bytes, expected 1248/],
    ['too long', good + 'AAAA', /bytes, expected 1248/],
    ['small-order Ed25519 key', withSign(identity), /not a valid point of large order/],
    [
      'zero X25519 key',
      PATIENT_KEY_PREFIX + Buffer.concat([raw.subarray(0, 32), Buffer.alloc(32), raw.subarray(64)]).toString('base64url'),
      /X25519 key is zero/,
    ],
  ]
  for (const [what, text, msg] of cases) t.throws(() => parsePatientPublicKey(text), { code: 'PATIENT_BAD_KEY', message: msg }, what)
})
