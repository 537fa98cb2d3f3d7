import { DOMAIN, signingBytes, verifyEd25519, type Ed25519Signer } from '../crypto/index.js'
import { equalBytes, toHex } from '../util/index.js'
import { CodecError, asArray, asBytes, asEnum, asU32, asU64Number, decodeCanonical, encodeTrusted, u64, type Encodable } from './codec.js'
import { BlockError } from './errors.js'

/** The voters a certificate is checked against (an AuthoritySet is one). */
export interface VoterSet {
  readonly members: readonly { readonly signKey: Uint8Array }[]
  readonly quorum: number
}

/** Vote kinds of the BFT rounds. */
export type VoteKind = 'prevote' | 'precommit'

/** The bytes an authority signs for a vote: VOTE tag || [chainId, kind, height, round, blockHash or empty for nil]. */
export function voteSigningBytes(chainId: string, kind: VoteKind, height: number, round: number, blockHash: Uint8Array | null): Uint8Array {
  return signingBytes(DOMAIN.VOTE, encodeTrusted([chainId, kind, u64(height), round, blockHash ?? new Uint8Array(0)]))
}

/** One authority's precommit signature. */
export interface CommitSig {
  readonly signer: Uint8Array
  readonly signature: Uint8Array
}

/** The precommits that finalized a block: stored beside it, verifiable offline. */
export interface CommitCertificate {
  readonly height: number
  readonly round: number
  readonly blockHash: Uint8Array
  readonly sigs: readonly CommitSig[]
}

/** Signs a precommit for a block (a one-authority chain's certificate is one of these). */
export function signPrecommit(signer: Ed25519Signer, chainId: string, height: number, round: number, blockHash: Uint8Array): CommitSig {
  return { signer: signer.publicKey, signature: signer.sign(voteSigningBytes(chainId, 'precommit', height, round, blockHash)) }
}

/** Wire bytes of a certificate. */
export function encodeCertificate(c: CommitCertificate): Uint8Array {
  return encodeTrusted([u64(c.height), c.round, c.blockHash, c.sigs.map((s) => [s.signer, s.signature])])
}

/** Certificate from wire bytes (shape only; see verifyCertificate). */
export function decodeCertificate(bytes: Uint8Array): CommitCertificate {
  try {
    const a = asArray(decodeCanonical(bytes), 'certificate', 4)
    const sigs = asArray(a[3], 'certificate.sigs', undefined, 1024).map((x, i) => {
      const p = asArray(x, `certificate.sigs[${i}]`, 2)
      return { signer: asBytes(p[0], 'signer', 32), signature: asBytes(p[1], 'signature', 64) }
    })
    return {
      height: asU64Number(a[0], 'certificate.height'),
      round: asU32(a[1], 'certificate.round'),
      blockHash: asBytes(a[2], 'certificate.blockHash', 32),
      sigs,
    }
  } catch (err) {
    if (err instanceof CodecError) throw new BlockError('BLOCK_BAD_CERTIFICATE', `malformed certificate: ${err.message}`, { cause: err })
    throw err
  }
}

/**
 * Checks that `c` finalizes block `blockHash` at `height`: more than 2/3 of
 * `set` signed a precommit for it, each signer counted once, every signature
 * valid under the one consensus verifier.
 */
export function verifyCertificate(c: CommitCertificate, chainId: string, height: number, blockHash: Uint8Array, set: VoterSet): void {
  if (c.height !== height || !equalBytes(c.blockHash, blockHash)) throw new BlockError('BLOCK_BAD_CERTIFICATE', 'certificate is for another block')
  const members = new Set(set.members.map((m) => toHex(m.signKey)))
  const seen = new Set<string>()
  const msg = voteSigningBytes(chainId, 'precommit', c.height, c.round, c.blockHash)
  for (const s of c.sigs) {
    const k = toHex(s.signer)
    if (!members.has(k)) throw new BlockError('BLOCK_BAD_CERTIFICATE', 'certificate signed by a key outside the authority set')
    if (seen.has(k)) throw new BlockError('BLOCK_BAD_CERTIFICATE', 'certificate counts one authority twice')
    if (!verifyEd25519(s.signer, msg, s.signature)) throw new BlockError('BLOCK_BAD_CERTIFICATE', 'certificate signature does not verify')
    seen.add(k)
  }
  if (seen.size < set.quorum) throw new BlockError('BLOCK_BAD_CERTIFICATE', `certificate has ${seen.size} of the ${set.quorum} signatures needed`)
}

/** JSON view of a certificate. */
export function certificateToJSON(c: CommitCertificate): Record<string, unknown> {
  return { height: c.height, round: c.round, blockHash: toHex(c.blockHash), signers: c.sigs.map((s) => toHex(s.signer)) }
}

/** A signed prevote or precommit (null blockHash: a vote for nil). */
export interface SignedVote {
  readonly kind: VoteKind
  readonly height: number
  readonly round: number
  readonly blockHash: Uint8Array | null
  readonly signer: Uint8Array
  readonly signature: Uint8Array
}

/** Signs a vote. */
export function signVote(signer: Ed25519Signer, chainId: string, kind: VoteKind, height: number, round: number, blockHash: Uint8Array | null): SignedVote {
  return { kind, height, round, blockHash, signer: signer.publicKey, signature: signer.sign(voteSigningBytes(chainId, kind, height, round, blockHash)) }
}

/** True when the vote's signature verifies under the consensus verifier. */
export function verifyVote(v: SignedVote, chainId: string): boolean {
  return verifyEd25519(v.signer, voteSigningBytes(chainId, v.kind, v.height, v.round, v.blockHash), v.signature)
}

/** Wire form of a vote: [kind, height u64, round, blockHash or empty, signer, signature]. */
export function voteToWire(v: SignedVote): Encodable {
  return [v.kind, u64(v.height), v.round, v.blockHash ?? new Uint8Array(0), v.signer, v.signature]
}

/** Vote from its wire form (shape only; see verifyVote). Throws CodecError. */
export function voteFromWire(x: unknown): SignedVote {
  const a = asArray(x, 'vote', 6)
  const kind = asEnum(a[0], 'vote.kind', ['prevote', 'precommit'] as const)
  const hash = asBytes(a[3], 'vote.blockHash', undefined, 32)
  if (hash.length !== 0 && hash.length !== 32) throw new CodecError('CODEC_SCHEMA', 'vote.blockHash: expected 32 bytes or empty')
  return {
    kind,
    height: asU64Number(a[1], 'vote.height'),
    round: asU32(a[2], 'vote.round'),
    blockHash: hash.length === 0 ? null : hash,
    signer: asBytes(a[4], 'vote.signer', 32),
    signature: asBytes(a[5], 'vote.signature', 64),
  }
}
