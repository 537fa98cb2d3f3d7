import t from 'tap'
import type { Test } from 'tap'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm, readFile, writeFile, stat, readdir, chmod } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { scryptSync, createCipheriv, createDecipheriv } from 'node:crypto'
import { z } from 'zod'
import {
  saveKeystore,
  loadKeystore,
  readKeystorePublicKeys,
  readPassphrase,
  generateOrgKeys,
  orgKeysFromSecret,
  generatePassphrase,
  KeystoreError,
  Ed25519Signer,
  x25519FromPrivate,
  PASSPHRASE_ENV,
  SCRYPT_PARAMS,
} from '../../../src/crypto/index.js'
import type { KeystoreCode } from '../../../src/crypto/index.js'
import { fromHex, toHex, utf8, RadError } from '../../../src/util/index.js'

// Low cost for speed; parseKeystore accepts N >= 1024.
const FAST = { N: 1024, r: 8, p: 1 }
const PASS = 'correct horse battery staple'

const hex = z.string().regex(/^(?:[0-9a-f]{2})*$/)
const FileSchema = z
  .object({
    type: z.literal('radchain-keystore'),
    version: z.literal(1),
    publicKeys: z.object({ sign: hex.length(64), enc: hex.length(64) }),
    kdf: z.object({ name: z.literal('scrypt'), N: z.number().int(), r: z.number().int(), p: z.number().int(), salt: hex }),
    cipher: z.object({ name: z.literal('aes-256-gcm'), iv: hex.length(24) }),
    ciphertext: hex,
    tag: hex.length(32),
  })
  .strict()
type KeystoreFileJson = z.infer<typeof FileSchema>
const VectorSchema = z.object({
  passphrase: z.string(),
  expectSignPublicKey: hex.length(64),
  expectEncPublicKey: hex.length(64),
  secret: hex.length(128),
  file: FileSchema,
})
const vector = VectorSchema.parse(JSON.parse(readFileSync(new URL('../../vectors/keystore.json', import.meta.url), 'utf8')))

let dir = ''
let n = 0
t.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'radchain-keystore-test-'))
})
t.teardown(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true })
})
function fresh(name = 'keystore'): string {
  n++
  return join(dir, `${name}-${n}.json`)
}

async function readJson(path: string): Promise<KeystoreFileJson> {
  return FileSchema.parse(JSON.parse(await readFile(path, 'utf8')))
}
async function writeJson(path: string, f: unknown): Promise<void> {
  await writeFile(path, JSON.stringify(f, null, 2) + '\n', { mode: 0o600 })
}

/** Associated data as documented in keystore.ts: the header fields, as a JSON array. */
function aad(f: KeystoreFileJson): Buffer {
  return Buffer.from(
    utf8(
      JSON.stringify([f.type, f.version, f.publicKeys.sign, f.publicKeys.enc, f.kdf.name, f.kdf.N, f.kdf.r, f.kdf.p, f.kdf.salt, f.cipher.name, f.cipher.iv]),
    ),
  )
}
function kdf(f: KeystoreFileJson, passphrase: string): Buffer {
  return scryptSync(passphrase, fromHex(f.kdf.salt), 32, { N: f.kdf.N, r: f.kdf.r, p: f.kdf.p })
}
/** Independent decryption of a keystore file (scrypt, RFC 7914; AES-256-GCM, SP 800-38D). */
function openIndependently(f: KeystoreFileJson, passphrase: string): Uint8Array {
  const d = createDecipheriv('aes-256-gcm', kdf(f, passphrase), fromHex(f.cipher.iv))
  d.setAAD(aad(f))
  d.setAuthTag(fromHex(f.tag))
  return new Uint8Array(Buffer.concat([d.update(fromHex(f.ciphertext)), d.final()]))
}
/** Re-encrypts `secret` under `f`'s header, so the AEAD check passes whatever the header says. */
function sealIndependently(f: KeystoreFileJson, passphrase: string, secret: Uint8Array): KeystoreFileJson {
  const c = createCipheriv('aes-256-gcm', kdf(f, passphrase), fromHex(f.cipher.iv))
  c.setAAD(aad(f))
  const ct = Buffer.concat([c.update(secret), c.final()])
  return { ...f, ciphertext: toHex(ct), tag: toHex(c.getAuthTag()) }
}

async function rejectsWith(t: Test, p: Promise<unknown>, code: KeystoreCode, what: string): Promise<void> {
  try {
    await p
    t.fail(`${what}: expected ${code}, but it resolved`)
  } catch (err) {
    t.ok(err instanceof KeystoreError, `${what}: a KeystoreError`)
    t.ok(err instanceof RadError, `${what}: a RadError`)
    t.equal((err as KeystoreError).name, 'KeystoreError', `${what}: name`)
    t.equal((err as KeystoreError).code, code, `${what}: code`)
  }
}

async function savedKeystore(): Promise<{ path: string; secret: Uint8Array; file: KeystoreFileJson }> {
  const { secret } = generateOrgKeys()
  const path = fresh()
  await saveKeystore(path, secret, PASS, FAST)
  return { path, secret, file: await readJson(path) }
}

t.test('scrypt defaults are the documented ones', async (t) => {
  t.same({ ...SCRYPT_PARAMS }, { N: 65536, r: 8, p: 1 })
  t.equal(PASSPHRASE_ENV, 'RADCHAIN_PASSPHRASE')
})

t.test('generateOrgKeys / orgKeysFromSecret', async (t) => {
  const { keys, secret } = generateOrgKeys()
  t.equal(secret.length, 64)
  t.equal(toHex(keys.signer.publicKey), toHex(new Ed25519Signer(secret.subarray(0, 32)).publicKey))
  t.equal(toHex(keys.encryption.privateKey), toHex(secret.subarray(32)))
  const again = orgKeysFromSecret(secret)
  t.equal(toHex(again.signer.publicKey), toHex(keys.signer.publicKey))
  t.equal(toHex(again.encryption.publicKey), toHex(keys.encryption.publicKey))
  t.not(toHex(generateOrgKeys().secret), toHex(secret), 'fresh randomness')
  t.throws(() => orgKeysFromSecret(new Uint8Array(63)), { name: 'KeystoreError', code: 'KEYSTORE_CORRUPT' })
  t.throws(() => orgKeysFromSecret(new Uint8Array(65)), { name: 'KeystoreError', code: 'KEYSTORE_CORRUPT' })
})

t.test('round trip: same public keys and a signer that signs identically', async (t) => {
  const { keys, secret } = generateOrgKeys()
  const secretBefore = toHex(secret)
  const path = fresh()
  const saved = await saveKeystore(path, secret, PASS, FAST)
  t.equal(toHex(secret), secretBefore, 'save leaves the caller secret as it was')
  t.equal(toHex(saved.signer.publicKey), toHex(keys.signer.publicKey))
  t.equal(toHex(saved.encryption.publicKey), toHex(keys.encryption.publicKey))

  const loaded = await loadKeystore(path, PASS)
  t.equal(toHex(loaded.signer.publicKey), toHex(keys.signer.publicKey), 'signing public key')
  t.equal(toHex(loaded.encryption.publicKey), toHex(keys.encryption.publicKey), 'encryption public key')
  t.equal(toHex(loaded.encryption.privateKey), toHex(secret.subarray(32)), 'encryption private key')
  for (const msg of [new Uint8Array(0), utf8('radchain'), new Uint8Array(1000).fill(7)]) {
    t.equal(toHex(loaded.signer.sign(msg)), toHex(keys.signer.sign(msg)), `signs ${msg.length} bytes identically`)
  }

  const f = await readJson(path)
  t.same(f.kdf.N, FAST.N, 'params argument is used')
  t.equal(toHex(openIndependently(f, PASS)), toHex(secret), 'the file decrypts independently to the secret')
})

t.test('the file has mode 0600, also when replacing a wider file, and no temp files are left', async (t) => {
  const { secret } = generateOrgKeys()
  const path = fresh()
  await writeFile(path, 'old')
  await chmod(path, 0o644)
  await saveKeystore(path, secret, PASS, FAST)
  t.equal((await stat(path)).mode & 0o777, 0o600)
  t.same(
    (await readdir(dir)).filter((name) => name.endsWith('.tmp')),
    [],
    'no temp files',
  )
})

t.test('the file never contains the secret, the seed, or the passphrase', async (t) => {
  const { path, secret } = await savedKeystore()
  const text = await readFile(path, 'utf8')
  t.notOk(text.includes(toHex(secret)), 'secret hex')
  t.notOk(text.includes(toHex(secret.subarray(0, 32))), 'ed25519 seed hex')
  t.notOk(text.includes(toHex(secret.subarray(32))), 'x25519 private key hex')
  t.notOk(text.includes(Buffer.from(secret.subarray(0, 32)).toString('base64')), 'seed base64')
  t.notOk(text.includes(PASS), 'passphrase')
})

t.test('two saves of one secret use fresh salt and iv', async (t) => {
  const { secret } = generateOrgKeys()
  const a = fresh()
  const b = fresh()
  await saveKeystore(a, secret, PASS, FAST)
  await saveKeystore(b, secret, PASS, FAST)
  const fa = await readJson(a)
  const fb = await readJson(b)
  t.not(fa.kdf.salt, fb.kdf.salt)
  t.not(fa.cipher.iv, fb.cipher.iv)
  t.not(fa.ciphertext, fb.ciphertext)
})

t.test('saveKeystore rejects an empty passphrase and a bad secret', async (t) => {
  const { secret } = generateOrgKeys()
  const path = fresh()
  await rejectsWith(t, saveKeystore(path, secret, '', FAST), 'KEYSTORE_NO_PASSPHRASE', 'empty passphrase')
  await rejectsWith(t, saveKeystore(path, secret.subarray(0, 32), PASS, FAST), 'KEYSTORE_CORRUPT', '32-byte secret')
  await rejectsWith(t, readKeystorePublicKeys(path), 'KEYSTORE_NOT_FOUND', 'nothing was written')
})

t.test('wrong passphrase -> KEYSTORE_BAD_PASSPHRASE', async (t) => {
  const { path } = await savedKeystore()
  await rejectsWith(t, loadKeystore(path, PASS + ' '), 'KEYSTORE_BAD_PASSPHRASE', 'trailing space')
  await rejectsWith(t, loadKeystore(path, 'Correct horse battery staple'), 'KEYSTORE_BAD_PASSPHRASE', 'case')
  await rejectsWith(t, loadKeystore(path, ''), 'KEYSTORE_BAD_PASSPHRASE', 'empty')
  t.ok(await loadKeystore(path, PASS), 'the right one still opens it')
})

t.test('tampering -> KEYSTORE_BAD_PASSPHRASE (AEAD tag and associated data)', async (t) => {
  const { path, file } = await savedKeystore()
  const other = generateOrgKeys().keys
  const flipHex = (s: string, i = 0): string => s.slice(0, i) + (s[i] === '0' ? '1' : '0') + s.slice(i + 1)
  const cases: [string, KeystoreFileJson][] = [
    ['ciphertext first byte', { ...file, ciphertext: flipHex(file.ciphertext) }],
    ['ciphertext last byte', { ...file, ciphertext: flipHex(file.ciphertext, file.ciphertext.length - 1) }],
    ['tag', { ...file, tag: flipHex(file.tag) }],
    ['iv', { ...file, cipher: { ...file.cipher, iv: flipHex(file.cipher.iv) } }],
    ['salt', { ...file, kdf: { ...file.kdf, salt: flipHex(file.kdf.salt) } }],
    ['kdf N', { ...file, kdf: { ...file.kdf, N: 2048 } }],
    ['kdf r', { ...file, kdf: { ...file.kdf, r: 9 } }],
    ['signing public key in header', { ...file, publicKeys: { ...file.publicKeys, sign: toHex(other.signer.publicKey) } }],
    ['encryption public key in header', { ...file, publicKeys: { ...file.publicKeys, enc: toHex(other.encryption.publicKey) } }],
    ['public keys swapped', { ...file, publicKeys: { sign: file.publicKeys.enc, enc: file.publicKeys.sign } }],
  ]
  for (const [what, f] of cases) {
    const p = fresh('tampered')
    await writeJson(p, f)
    await rejectsWith(t, loadKeystore(p, PASS), 'KEYSTORE_BAD_PASSPHRASE', what)
  }
  t.ok(await loadKeystore(path, PASS), 'the original still opens')
})

t.test('a header whose public keys do not match the secret -> KEYSTORE_CORRUPT even when the AEAD passes', async (t) => {
  const { file, secret } = await savedKeystore()
  const other = generateOrgKeys().keys
  const forged = sealIndependently({ ...file, publicKeys: { ...file.publicKeys, sign: toHex(other.signer.publicKey) } }, PASS, secret)
  const p = fresh('forged')
  await writeJson(p, forged)
  await rejectsWith(t, loadKeystore(p, PASS), 'KEYSTORE_CORRUPT', 'mismatched public key')
  // Control: the same re-sealing with the true header opens, so the failure above is the key check.
  const control = fresh('resealed')
  await writeJson(control, sealIndependently(file, PASS, secret))
  t.ok(await loadKeystore(control, PASS), 'independently sealed keystore opens')
})

t.test('malformed files -> KEYSTORE_CORRUPT (for load and for readKeystorePublicKeys)', async (t) => {
  const { file } = await savedKeystore()
  const noTag: Partial<KeystoreFileJson> = { ...file }
  delete noTag.tag
  const bad: [string, string][] = [
    ['not JSON', '{"type": "radchain-keystore",'],
    ['empty file', ''],
    ['JSON null', 'null'],
    ['JSON array', '[]'],
    ['JSON string', '"radchain-keystore"'],
    ['wrong type', JSON.stringify({ ...file, type: 'other' })],
    ['wrong version', JSON.stringify({ ...file, version: 2 })],
    ['missing tag', JSON.stringify(noTag)],
    ['short ciphertext', JSON.stringify({ ...file, ciphertext: file.ciphertext.slice(2) })],
    ['non-hex public key', JSON.stringify({ ...file, publicKeys: { ...file.publicKeys, sign: 'zz' + file.publicKeys.sign.slice(2) } })],
    ['short public key', JSON.stringify({ ...file, publicKeys: { ...file.publicKeys, enc: file.publicKeys.enc.slice(2) } })],
    ['N below 1024', JSON.stringify({ ...file, kdf: { ...file.kdf, N: 512 } })],
    ['N above 2^22', JSON.stringify({ ...file, kdf: { ...file.kdf, N: 2 ** 23 } })],
    ['N not an integer', JSON.stringify({ ...file, kdf: { ...file.kdf, N: 1024.5 } })],
    ['r = 0', JSON.stringify({ ...file, kdf: { ...file.kdf, r: 0 } })],
    ['p = 17', JSON.stringify({ ...file, kdf: { ...file.kdf, p: 17 } })],
    ['other kdf', JSON.stringify({ ...file, kdf: { ...file.kdf, name: 'pbkdf2' } })],
    ['other cipher', JSON.stringify({ ...file, cipher: { ...file.cipher, name: 'aes-128-gcm' } })],
    ['short iv', JSON.stringify({ ...file, cipher: { ...file.cipher, iv: file.cipher.iv.slice(2) } })],
    ['short tag', JSON.stringify({ ...file, tag: file.tag.slice(2) })],
  ]
  for (const [what, text] of bad) {
    const p = fresh('malformed')
    await writeFile(p, text)
    await rejectsWith(t, loadKeystore(p, PASS), 'KEYSTORE_CORRUPT', `load: ${what}`)
    await rejectsWith(t, readKeystorePublicKeys(p), 'KEYSTORE_CORRUPT', `readKeystorePublicKeys: ${what}`)
  }
})

t.test('missing file -> KEYSTORE_NOT_FOUND', async (t) => {
  const p = join(dir, 'does-not-exist.json')
  await rejectsWith(t, loadKeystore(p, PASS), 'KEYSTORE_NOT_FOUND', 'load')
  await rejectsWith(t, readKeystorePublicKeys(p), 'KEYSTORE_NOT_FOUND', 'readKeystorePublicKeys')
  await rejectsWith(t, loadKeystore(dir, PASS), 'KEYSTORE_NOT_FOUND', 'a directory')
})

t.test('readKeystorePublicKeys works without the passphrase', async (t) => {
  const { keys, secret } = generateOrgKeys()
  const path = fresh()
  await saveKeystore(path, secret, PASS, FAST)
  const pubs = await readKeystorePublicKeys(path)
  t.equal(toHex(pubs.sign), toHex(keys.signer.publicKey))
  t.equal(toHex(pubs.enc), toHex(keys.encryption.publicKey))
  t.ok(pubs.sign instanceof Uint8Array)
  t.equal(pubs.sign.length, 32)
  t.equal(pubs.enc.length, 32)
})

t.test('pinned keystore vector still opens (on-disk format and associated-data layout)', async (t) => {
  const secret = fromHex(vector.secret)
  t.equal(toHex(new Ed25519Signer(secret.subarray(0, 32)).publicKey), vector.expectSignPublicKey, 'vector: RFC 8032 TEST 1 key')
  t.equal(toHex(x25519FromPrivate(secret.slice(32)).publicKey), vector.expectEncPublicKey, 'vector: RFC 7748 Alice key')
  t.notOk(JSON.stringify(vector.file).includes(vector.secret.slice(0, 64)), 'the pinned file does not contain the seed')
  t.equal(toHex(openIndependently(vector.file, vector.passphrase)), vector.secret, 'independent decryption')

  const p = fresh('vector')
  await writeJson(p, vector.file)
  const keys = await loadKeystore(p, vector.passphrase)
  t.equal(toHex(keys.signer.publicKey), vector.expectSignPublicKey)
  t.equal(toHex(keys.encryption.publicKey), vector.expectEncPublicKey)
  t.equal(toHex(keys.encryption.privateKey), vector.secret.slice(64))
  const pubs = await readKeystorePublicKeys(p)
  t.equal(toHex(pubs.sign), vector.expectSignPublicKey)
  await rejectsWith(t, loadKeystore(p, 'wrong'), 'KEYSTORE_BAD_PASSPHRASE', 'vector with a wrong passphrase')
})

t.test('readPassphrase', async (t) => {
  const file = async (text: string): Promise<string> => {
    const p = fresh('pass')
    await writeFile(p, text, { mode: 0o600 })
    return p
  }
  const env = (v?: string): NodeJS.ProcessEnv => (v === undefined ? {} : { [PASSPHRASE_ENV]: v })

  t.equal(await readPassphrase(await file('from-file\n'), env('from-env')), 'from-env', 'the env variable wins over the file')
  t.equal(await readPassphrase(undefined, env('from-env')), 'from-env', 'env without a file')
  t.equal(await readPassphrase(join(dir, 'missing-pass'), env('from-env')), 'from-env', 'env with a missing file')
  t.equal(await readPassphrase(await file('from-file\n'), env('')), 'from-file', 'an empty env variable falls back to the file')
  t.equal(await readPassphrase(await file('from-file\n'), { OTHER: 'x' }), 'from-file', 'only RADCHAIN_PASSPHRASE is read')

  t.equal(await readPassphrase(await file('secret\n'), env()), 'secret', 'strips \\n')
  t.equal(await readPassphrase(await file('secret\r\n'), env()), 'secret', 'strips \\r\\n')
  t.equal(await readPassphrase(await file('secret'), env()), 'secret', 'no newline')
  t.equal(await readPassphrase(await file('secret\n\n'), env()), 'secret\n', 'strips only one newline')
  t.equal(await readPassphrase(await file(' two words \n'), env()), ' two words ', 'keeps spaces')
  t.equal(await readPassphrase(await file('line1\nline2\n'), env()), 'line1\nline2', 'keeps inner newlines')

  await rejectsWith(t, readPassphrase(await file(''), env()), 'KEYSTORE_NO_PASSPHRASE', 'empty file')
  await rejectsWith(t, readPassphrase(await file('\n'), env()), 'KEYSTORE_NO_PASSPHRASE', 'file with only a newline')
  await rejectsWith(t, readPassphrase(await file('\r\n'), env()), 'KEYSTORE_NO_PASSPHRASE', 'file with only CRLF')
  await rejectsWith(t, readPassphrase(join(dir, 'missing-pass'), env()), 'KEYSTORE_NO_PASSPHRASE', 'missing file')
  await rejectsWith(t, readPassphrase(undefined, env()), 'KEYSTORE_NO_PASSPHRASE', 'no env, no file')
  await rejectsWith(t, readPassphrase(undefined, env('')), 'KEYSTORE_NO_PASSPHRASE', 'empty env, no file')
})

t.test('a passphrase read from a file opens a keystore saved with it', async (t) => {
  const { keys, secret } = generateOrgKeys()
  const path = fresh()
  const pass = generatePassphrase()
  await saveKeystore(path, secret, pass, FAST)
  const pf = fresh('pass')
  await writeFile(pf, pass + '\n', { mode: 0o600 })
  const loaded = await loadKeystore(path, await readPassphrase(pf, {}))
  t.equal(toHex(loaded.signer.publicKey), toHex(keys.signer.publicKey))
})

t.test('generatePassphrase: 256 bits of base64url', async (t) => {
  const a = generatePassphrase()
  t.match(a, /^[A-Za-z0-9_-]{43}$/)
  t.equal(Buffer.from(a, 'base64url').length, 32)
  t.not(generatePassphrase(), a)
})
