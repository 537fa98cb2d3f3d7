import { createHash } from 'node:crypto'
import { utf8, type Bytes } from '../util/index.js'

/**
 * Domain tags: every hash in radchain is sha256(tag || 0x00 || bytes), so a
 * value hashed for one purpose can never be mistaken for another.
 */
export const DOMAIN = {
  TX: 'radchain/tx/v1',
  TX_SIGN: 'radchain/tx-sign/v1',
  BLOCK_HEADER: 'radchain/block-header/v1',
  MERKLE_LEAF: 'radchain/merkle-leaf/v1',
  MERKLE_NODE: 'radchain/merkle-node/v1',
  STATE: 'radchain/state/v1',
  AUTHORITY_SET: 'radchain/authority-set/v1',
  VOTE: 'radchain/vote/v1',
  PROPOSAL: 'radchain/proposal/v1',
  COMMIT: 'radchain/commit/v1',
  ORG_PROPOSAL: 'radchain/org-proposal/v1',
  GENESIS: 'radchain/genesis/v1',
  /** What a lessee signs when it asks a holder for a chunk under its lease (evidence of a violation once the lease has ended). */
  LEASE_CHUNK_REQUEST: 'radchain/lease-chunk-request/v1',
  /** Rendezvous weight of an organization for a study (chain/placement.ts). */
  PLACEMENT: 'radchain/placement/v1',
  /** HKDF-SHA256 info deriving an ML-KEM-768 seed from an X25519 private key (mlkem.ts). */
  ML_KEM_SEED: 'radchain/ml-kem-768-seed/v1',
  /** Transcript hash of a key envelope's public values, the HKDF salt (envelope.ts). */
  ENVELOPE_KEM: 'radchain/envelope-kem/v1',
  /** HKDF-SHA256 info of a key envelope's AES-256-GCM key (envelope.ts). */
  ENVELOPE_KEY: 'radchain/envelope-key/v1',
  /** Tweak h of a study's owner key O = A + h*B from the shared secret, the ephemeral key and the study id (study-owner.ts). */
  STUDY_OWNER: 'radchain/study-owner/v1',
  /** Nonce prefix of the signer for a study's owner key, from the patient's RFC 8032 prefix and h (study-owner.ts). */
  STUDY_OWNER_NONCE: 'radchain/study-owner-nonce/v1',
} as const

/** One of the DOMAIN tags. */
export type DomainTag = (typeof DOMAIN)[keyof typeof DOMAIN]

const TAG_PREFIX = new Map<string, Uint8Array>()

function tagPrefix(tag: string): Uint8Array {
  let p = TAG_PREFIX.get(tag)
  if (p === undefined) {
    p = new Uint8Array([...utf8(tag), 0])
    TAG_PREFIX.set(tag, p)
  }
  return p
}

/** SHA-256 (FIPS 180-4) of `tag || 0x00 || parts...`, on node:crypto. */
export function taggedHash(tag: DomainTag, ...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256')
  h.update(tagPrefix(tag))
  for (const p of parts) h.update(p)
  return new Uint8Array(h.digest())
}

/** The bytes that get signed for `tag`: `tag || 0x00 || msg`. */
export function signingBytes(tag: DomainTag, msg: Uint8Array): Uint8Array {
  const p = tagPrefix(tag)
  const out = new Uint8Array(p.length + msg.length)
  out.set(p, 0)
  out.set(msg, p.length)
  return out
}

/** Plain SHA-256 (FIPS 180-4) on node:crypto, of one array or of consecutive parts. */
export function sha256(data: Bytes): Uint8Array {
  if (data instanceof Uint8Array) return new Uint8Array(createHash('sha256').update(data).digest())
  const h = createHash('sha256')
  for (const p of data) h.update(p)
  return new Uint8Array(h.digest())
}
