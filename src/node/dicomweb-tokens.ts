import { createHash, randomBytes } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { writeFileAtomic } from '../util/index.js'
import type { DicomwebClient, DicomwebScope } from '../dicomweb/index.js'
import { ConfigError } from './config.js'

/** What a token starts with, so that one found in a config file or a log can be recognised. */
export const DICOMWEB_TOKEN_PREFIX = 'rcdw_'
export const DICOMWEB_SCOPES: readonly DicomwebScope[] = ['read', 'write', 'readwrite']
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

/** One client's entry. */
export interface DicomwebTokenRecord {
  readonly name: string
  readonly scope: DicomwebScope
  /** SHA-256 of the token, hex. */
  readonly sha256: string
  readonly createdAt: string
}

interface TokenFile {
  readonly version: 1
  readonly tokens: DicomwebTokenRecord[]
}

function digest(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex')
}

function parse(text: string, path: string): TokenFile {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw new ConfigError('CONFIG_INVALID', `${path} is not valid JSON`)
  }
  const f = json as Partial<TokenFile>
  if (f.version !== 1 || !Array.isArray(f.tokens)) throw new ConfigError('CONFIG_INVALID', `${path}: not a DICOMweb token file (version 1)`)
  for (const [i, t] of f.tokens.entries()) {
    if (typeof t?.name !== 'string' || !DICOMWEB_SCOPES.includes(t.scope) || typeof t.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(t.sha256))
      throw new ConfigError('CONFIG_INVALID', `${path}: tokens[${i}] is malformed`)
  }
  return f as TokenFile
}

async function load(path: string): Promise<TokenFile> {
  try {
    return parse(await readFile(path, 'utf8'), path)
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return { version: 1, tokens: [] }
    throw err
  }
}

/** Creates a client token (written hashed; the token itself is returned once and kept nowhere). */
export async function createDicomwebToken(path: string, name: string, scope: DicomwebScope, now = new Date()): Promise<string> {
  if (!NAME_RE.test(name)) throw new ConfigError('CONFIG_INVALID', 'token name: 1 to 64 letters, digits, dots, dashes or underscores')
  if (!DICOMWEB_SCOPES.includes(scope)) throw new ConfigError('CONFIG_INVALID', `token scope must be one of ${DICOMWEB_SCOPES.join(', ')}`)
  const f = await load(path)
  if (f.tokens.some((t) => t.name === name))
    throw new ConfigError('CONFIG_INVALID', `a token named ${name} exists already: revoke it first, or pick another name`)
  const token = DICOMWEB_TOKEN_PREFIX + randomBytes(32).toString('base64url')
  const tokens = [...f.tokens, { name, scope, sha256: digest(token), createdAt: now.toISOString() }]
  await writeFileAtomic(path, JSON.stringify({ version: 1, tokens }, null, 2) + '\n', 0o600)
  return token
}

/** The clients that have a token. */
export async function listDicomwebTokens(path: string): Promise<DicomwebTokenRecord[]> {
  return (await load(path)).tokens
}

/** Revokes a client's token; false when there was none of that name. A running daemon refuses it from its next request on. */
export async function revokeDicomwebToken(path: string, name: string): Promise<boolean> {
  const f = await load(path)
  const tokens = f.tokens.filter((t) => t.name !== name)
  if (tokens.length === f.tokens.length) return false
  await writeFileAtomic(path, JSON.stringify({ version: 1, tokens }, null, 2) + '\n', 0o600)
  return true
}

/**
 * The daemon's view of the token file: read again whenever the file changed
 * (its size, modification time or inode), so a token created or revoked with
 * the CLI counts from the next request on. A file that cannot be read or is
 * malformed admits nobody.
 */
export class DicomwebTokens {
  readonly #path: string
  #stamp = ''
  #byDigest = new Map<string, DicomwebClient>()

  constructor(path: string) {
    this.#path = path
  }

  authenticate(token: string): DicomwebClient | undefined {
    this.#refresh()
    return this.#byDigest.get(digest(token))
  }

  #refresh(): void {
    let stamp: string
    try {
      const st = statSync(this.#path, { bigint: true })
      stamp = `${st.ino}:${st.size}:${st.mtimeNs}`
    } catch {
      stamp = 'none'
    }
    if (stamp === this.#stamp) return
    this.#stamp = stamp
    this.#byDigest = new Map()
    if (stamp === 'none') return
    try {
      for (const t of parse(readFileSync(this.#path, 'utf8'), this.#path).tokens) this.#byDigest.set(t.sha256, { name: t.name, scope: t.scope })
    } catch {
      this.#byDigest = new Map()
    }
  }
}
