import { scrypt as scryptCb, randomBytes, createCipheriv, createDecipheriv, type ScryptOptions } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { RadError, toHex, fromHex, isHex, utf8, writeFileAtomic, equalBytes, concatBytes, type ErrorCodes } from '../util/index.js'
import { Ed25519Signer } from './ed25519.js'
import { x25519FromPrivate, generateX25519, type X25519KeyPair } from './x25519.js'

/** Failure codes of the keystore. */
export type KeystoreCode = ErrorCodes<'KEYSTORE_NOT_FOUND' | 'KEYSTORE_CORRUPT' | 'KEYSTORE_BAD_PASSPHRASE' | 'KEYSTORE_NO_PASSPHRASE' | 'KEYSTORE_EXISTS'>

/** A keystore failure. */
export class KeystoreError extends RadError<KeystoreCode> {
  constructor(code: KeystoreCode, message: string, opts?: { cause?: unknown }) {
    super(code, message, opts)
    this.name = 'KeystoreError'
  }
}

/** An organization's keys: Ed25519 for signing, X25519 for key envelopes. */
export interface OrgKeys {
  readonly signer: Ed25519Signer
  readonly encryption: X25519KeyPair
  /** The Ed25519 seed, for the libp2p identity (the node's peer id is the organization's signing key). */
  readonly identitySeed: Uint8Array
}

/** Scrypt parameters (RFC 7914) used for new keystores. */
export const SCRYPT_PARAMS = { N: 1 << 16, r: 8, p: 1 } as const

/** Environment variable that may hold the keystore passphrase. */
export const PASSPHRASE_ENV = 'RADCHAIN_PASSPHRASE'

interface KeystoreFile {
  type: 'radchain-keystore'
  version: 1
  publicKeys: { sign: string; enc: string }
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string }
  cipher: { name: 'aes-256-gcm'; iv: string }
  ciphertext: string
  tag: string
}

function scrypt(pass: string, salt: Uint8Array, p: { N: number; r: number; p: number }): Promise<Buffer> {
  const opts: ScryptOptions = { N: p.N, r: p.r, p: p.p, maxmem: 256 * p.N * p.r + 16 * 1024 * 1024 }
  return new Promise((resolve, reject) => {
    scryptCb(pass, salt, 32, opts, (err, key) => (err === null ? resolve(key) : reject(err)))
  })
}

// The header fields are bound to the ciphertext as associated data, so a
// keystore whose public keys or KDF parameters were edited fails to open.
function aad(f: Pick<KeystoreFile, 'type' | 'version' | 'publicKeys' | 'kdf' | 'cipher'>): Uint8Array {
  return utf8(
    JSON.stringify([f.type, f.version, f.publicKeys.sign, f.publicKeys.enc, f.kdf.name, f.kdf.N, f.kdf.r, f.kdf.p, f.kdf.salt, f.cipher.name, f.cipher.iv]),
  )
}

/** Fresh random organization keys. */
export function generateOrgKeys(): { keys: OrgKeys; secret: Uint8Array } {
  const { signer, seed } = Ed25519Signer.generate()
  const encryption = generateX25519()
  return { keys: { signer, encryption, identitySeed: seed }, secret: concatBytes(seed, encryption.privateKey) }
}

/** Keys from the 64-byte secret (Ed25519 seed || X25519 private key). */
export function orgKeysFromSecret(secret: Uint8Array): OrgKeys {
  if (secret.length !== 64) throw new KeystoreError('KEYSTORE_CORRUPT', 'keystore secret has the wrong length')
  const seed = secret.slice(0, 32)
  return { signer: new Ed25519Signer(seed), encryption: x25519FromPrivate(secret.slice(32, 64)), identitySeed: seed }
}

/**
 * Encrypts the organization secret under a passphrase (scrypt, RFC 7914, then
 * AES-256-GCM, NIST SP 800-38D) and writes it atomically with mode 0600.
 */
export async function saveKeystore(
  path: string,
  secret: Uint8Array,
  passphrase: string,
  params: { N: number; r: number; p: number } = SCRYPT_PARAMS,
): Promise<OrgKeys> {
  if (passphrase.length === 0) throw new KeystoreError('KEYSTORE_NO_PASSPHRASE', 'the keystore passphrase is empty')
  const keys = orgKeysFromSecret(secret)
  const salt = randomBytes(16)
  const iv = randomBytes(12)
  const head = {
    type: 'radchain-keystore' as const,
    version: 1 as const,
    publicKeys: { sign: toHex(keys.signer.publicKey), enc: toHex(keys.encryption.publicKey) },
    kdf: { name: 'scrypt' as const, N: params.N, r: params.r, p: params.p, salt: toHex(salt) },
    cipher: { name: 'aes-256-gcm' as const, iv: toHex(iv) },
  }
  const key = await scrypt(passphrase, salt, params)
  const c = createCipheriv('aes-256-gcm', key, iv)
  c.setAAD(aad(head))
  const ct = Buffer.concat([c.update(secret), c.final()])
  const file: KeystoreFile = { ...head, ciphertext: toHex(ct), tag: toHex(c.getAuthTag()) }
  await writeFileAtomic(path, JSON.stringify(file, null, 2) + '\n', 0o600)
  return keys
}

function parseKeystore(text: string, path: string): KeystoreFile {
  let j: unknown
  try {
    j = JSON.parse(text)
  } catch {
    throw new KeystoreError('KEYSTORE_CORRUPT', `keystore ${path} is not valid JSON`)
  }
  const f = j as Partial<KeystoreFile>
  const ok =
    typeof f === 'object' &&
    f !== null &&
    f.type === 'radchain-keystore' &&
    f.version === 1 &&
    isHex(f.publicKeys?.sign, 32) &&
    isHex(f.publicKeys?.enc, 32) &&
    f.kdf?.name === 'scrypt' &&
    Number.isInteger(f.kdf.N) &&
    f.kdf.N >= 1024 &&
    f.kdf.N <= 1 << 22 &&
    Number.isInteger(f.kdf.r) &&
    f.kdf.r >= 1 &&
    f.kdf.r <= 32 &&
    Number.isInteger(f.kdf.p) &&
    f.kdf.p >= 1 &&
    f.kdf.p <= 16 &&
    isHex(f.kdf.salt) &&
    f.cipher?.name === 'aes-256-gcm' &&
    isHex(f.cipher.iv, 12) &&
    isHex(f.ciphertext, 64) &&
    isHex(f.tag, 16)
  if (!ok) throw new KeystoreError('KEYSTORE_CORRUPT', `keystore ${path} is malformed`)
  return f as KeystoreFile
}

/** Reads and decrypts a keystore; a wrong passphrase and a tampered file both fail closed. */
export async function loadKeystore(path: string, passphrase: string): Promise<OrgKeys> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new KeystoreError('KEYSTORE_NOT_FOUND', `cannot read keystore ${path}`, { cause: err })
  }
  const f = parseKeystore(text, path)
  const key = await scrypt(passphrase, fromHex(f.kdf.salt), f.kdf)
  const d = createDecipheriv('aes-256-gcm', key, fromHex(f.cipher.iv))
  d.setAAD(aad(f))
  d.setAuthTag(fromHex(f.tag))
  let secret: Uint8Array
  try {
    secret = new Uint8Array(Buffer.concat([d.update(fromHex(f.ciphertext)), d.final()]))
  } catch {
    throw new KeystoreError('KEYSTORE_BAD_PASSPHRASE', `cannot open keystore ${path}: wrong passphrase, or the file was altered`)
  }
  const keys = orgKeysFromSecret(secret)
  secret.fill(0)
  if (!equalBytes(keys.signer.publicKey, fromHex(f.publicKeys.sign)) || !equalBytes(keys.encryption.publicKey, fromHex(f.publicKeys.enc))) {
    throw new KeystoreError('KEYSTORE_CORRUPT', `keystore ${path}: public keys do not match the secret`)
  }
  return keys
}

/** Public keys recorded in a keystore's header, readable without the passphrase. */
export async function readKeystorePublicKeys(path: string): Promise<{ sign: Uint8Array; enc: Uint8Array }> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new KeystoreError('KEYSTORE_NOT_FOUND', `cannot read keystore ${path}`, { cause: err })
  }
  const f = parseKeystore(text, path)
  return { sign: fromHex(f.publicKeys.sign), enc: fromHex(f.publicKeys.enc) }
}

/**
 * The passphrase, from the environment variable RADCHAIN_PASSPHRASE if set,
 * else from `file` (trailing newline removed). Never from argv.
 */
export async function readPassphrase(file: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const fromEnv = env[PASSPHRASE_ENV]
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv
  if (file === undefined) throw new KeystoreError('KEYSTORE_NO_PASSPHRASE', `no passphrase: set ${PASSPHRASE_ENV} or a passphrase file`)
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new KeystoreError('KEYSTORE_NO_PASSPHRASE', `cannot read passphrase file ${file} (or set ${PASSPHRASE_ENV})`, { cause: err })
  }
  const p = text.replace(/\r?\n$/, '')
  if (p === '') throw new KeystoreError('KEYSTORE_NO_PASSPHRASE', `passphrase file ${file} is empty`)
  return p
}

/** A random passphrase for unattended daemons (256 bits, base64url). */
export function generatePassphrase(): string {
  return randomBytes(32).toString('base64url')
}
