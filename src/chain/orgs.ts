import { DOMAIN, taggedHash } from '../crypto/index.js'
import { toHex } from '../util/index.js'
import { CodecError, asArray, asBytes, asEnum, asString, decodeCanonical, encodeTrusted, type Encodable } from './codec.js'
import type { StateOverlay, StateMap } from './state.js'

/** Role of an organization: authorities vote in consensus, members store and lease. */
export const ORG_ROLES = ['authority', 'member'] as const
/** One of ORG_ROLES. */
export type OrgRole = (typeof ORG_ROLES)[number]

/** An admitted organization as the ledger records it. */
export interface OrgRecord {
  readonly id: string
  readonly name: string
  readonly role: OrgRole
  /** Ed25519 public key: signs transactions and votes, and is the libp2p identity. */
  readonly signKey: Uint8Array
  /** X25519 public key for key envelopes. */
  readonly encKey: Uint8Array
  /** Network addresses (multiaddrs) where its node listens. */
  readonly addrs: readonly string[]
}

/** Organization ids: lower-case letters, digits and dashes, 1 to 63 characters. */
export const ORG_ID_RE = /^[a-z0-9][a-z0-9-]{0,62}$/

/** Wire form of an organization record. */
export function orgToWire(o: OrgRecord): Encodable {
  return [o.id, o.name, o.role, o.signKey, o.encKey, [...o.addrs]]
}

/** Organization record from its wire form. */
export function orgFromWire(v: unknown): OrgRecord {
  const a = asArray(v, 'org', 6)
  const id = asString(a[0], 'org.id', 63)
  if (!ORG_ID_RE.test(id)) throw new CodecError('CODEC_SCHEMA', `org.id ${JSON.stringify(id)} must match ${ORG_ID_RE}`)
  const addrs = asArray(a[5], 'org.addrs', undefined, 16).map((x, i) => asString(x, `org.addrs[${i}]`, 256))
  return {
    id,
    name: asString(a[1], 'org.name', 256),
    role: asEnum(a[2], 'org.role', ORG_ROLES),
    signKey: asBytes(a[3], 'org.signKey', 32),
    encKey: asBytes(a[4], 'org.encKey', 32),
    addrs,
  }
}

/** JSON view of an organization record (keys in hex). */
export function orgToJSON(o: OrgRecord): Record<string, unknown> {
  return { id: o.id, name: o.name, role: o.role, signKey: toHex(o.signKey), encKey: toHex(o.encKey), addrs: o.addrs }
}

// State keys of the registry.
const ORG_KEY = (id: string): string => `o/${id}`
const SIGNKEY_INDEX = (key: Uint8Array): string => `k/${toHex(key)}`
const AUTHORITIES_KEY = 'a'

type Readable = StateOverlay | StateMap

/** The record of organization `id`, if admitted. */
export function getOrg(s: Readable, id: string): OrgRecord | undefined {
  const b = s.get(ORG_KEY(id))
  return b === undefined ? undefined : orgFromWire(decodeCanonical(b))
}

/** The organization whose signing key is `key`, if any. */
export function orgBySignKey(s: Readable, key: Uint8Array): OrgRecord | undefined {
  const id = s.get(SIGNKEY_INDEX(key))
  return id === undefined ? undefined : getOrg(s, Buffer.from(id).toString('utf8'))
}

/** Writes (or replaces) an organization record and its key index. */
export function putOrg(s: StateOverlay, o: OrgRecord): void {
  const prev = getOrg(s, o.id)
  if (prev !== undefined) s.delete(SIGNKEY_INDEX(prev.signKey))
  s.set(ORG_KEY(o.id), encodeTrusted(orgToWire(o)))
  s.set(SIGNKEY_INDEX(o.signKey), Buffer.from(o.id, 'utf8'))
  syncAuthorities(s, o.id, o.role === 'authority')
}

/** Every admitted organization, by a scan of the state (use at start, then follow block writes). */
export function listOrgs(s: StateMap): OrgRecord[] {
  const out: OrgRecord[] = []
  for (const [k, v] of s) if (k.startsWith('o/')) out.push(orgFromWire(decodeCanonical(v)))
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
}

/** True when a write to state key `key` may change the organization registry. */
export function isOrgKey(key: string): boolean {
  return key.startsWith('o/')
}

/** Removes organization `id`. */
export function deleteOrg(s: StateOverlay, id: string): void {
  const prev = getOrg(s, id)
  if (prev === undefined) return
  s.delete(ORG_KEY(id))
  s.delete(SIGNKEY_INDEX(prev.signKey))
  syncAuthorities(s, id, false)
}

/** Ids of the current authorities, sorted. */
export function authorityIds(s: Readable): string[] {
  const b = s.get(AUTHORITIES_KEY)
  if (b === undefined) return []
  return asArray(decodeCanonical(b), 'authorities').map((x) => asString(x, 'authority id', 63))
}

function syncAuthorities(s: StateOverlay, id: string, isAuthority: boolean): void {
  const ids = new Set(authorityIds(s))
  if (isAuthority === ids.has(id)) return
  if (isAuthority) ids.add(id)
  else ids.delete(id)
  s.set(AUTHORITIES_KEY, encodeTrusted([...ids].sort()))
}

/** The authority set in force: records sorted by id. */
export interface AuthoritySet {
  readonly members: readonly OrgRecord[]
  /** sha256(AUTHORITY_SET tag || encoding of [id, signKey] pairs). */
  readonly hash: Uint8Array
  /** Votes needed: floor(2n/3) + 1. */
  readonly quorum: number
  /** Faults tolerated: floor((n-1)/3). */
  readonly maxFaulty: number
}

/** Quorum size for n authorities: more than 2/3 of them. */
export function quorumSize(n: number): number {
  return Math.floor((2 * n) / 3) + 1
}

/** The authority set read from state. */
export function authoritySet(s: Readable): AuthoritySet {
  const members = authorityIds(s).map((id) => {
    const o = getOrg(s, id)
    if (o === undefined) throw new Error(`authority ${id} has no record`)
    return o
  })
  const hash = taggedHash(DOMAIN.AUTHORITY_SET, encodeTrusted(members.map((m) => [m.id, m.signKey])))
  const n = members.length
  return { members, hash, quorum: quorumSize(n), maxFaulty: Math.floor((n - 1) / 3) }
}
