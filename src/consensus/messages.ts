import { DOMAIN, signingBytes, verifyEd25519, type Ed25519Signer } from '../crypto/index.js'
import {
  CodecError,
  asArray,
  asBytes,
  asU32,
  asU64Number,
  decodeCanonical,
  encodeTrusted,
  u64,
  voteFromWire,
  voteToWire,
  type SignedVote,
} from '../chain/index.js'

/**
 * Consensus messages on the wire (canonical msgpack arrays):
 * - `['proposal', height, round, validRound + 1, blockHash, blockBytes, signer, signature]`
 *   (validRound -1 is written as 0, so every field is unsigned);
 * - `['vote', vote]` with a SignedVote in its wire form.
 */

/** A signed proposal of a block for (height, round). */
export interface Proposal {
  readonly height: number
  readonly round: number
  /** Round in which the proposed block got a prevote quorum before, or -1 (docs/CONSENSUS.md rule 3). */
  readonly validRound: number
  readonly blockHash: Uint8Array
  readonly blockBytes: Uint8Array
  readonly signer: Uint8Array
  readonly signature: Uint8Array
}

/** A decoded consensus message. */
export type ConsensusMessage = { readonly type: 'proposal'; readonly proposal: Proposal } | { readonly type: 'vote'; readonly vote: SignedVote }

function proposalSigningBytes(chainId: string, height: number, round: number, validRound: number, blockHash: Uint8Array): Uint8Array {
  return signingBytes(DOMAIN.PROPOSAL, encodeTrusted([chainId, u64(height), round, validRound + 1, blockHash]))
}

/** Signs a proposal. */
export function signProposal(signer: Ed25519Signer, chainId: string, p: Omit<Proposal, 'signer' | 'signature'>): Proposal {
  return { ...p, signer: signer.publicKey, signature: signer.sign(proposalSigningBytes(chainId, p.height, p.round, p.validRound, p.blockHash)) }
}

/** True when the proposal's signature verifies. */
export function verifyProposal(p: Proposal, chainId: string): boolean {
  return verifyEd25519(p.signer, proposalSigningBytes(chainId, p.height, p.round, p.validRound, p.blockHash), p.signature)
}

/** Wire bytes of a consensus message. */
export function encodeMessage(m: ConsensusMessage): Uint8Array {
  if (m.type === 'vote') return encodeTrusted(['vote', voteToWire(m.vote)])
  const p = m.proposal
  return encodeTrusted(['proposal', u64(p.height), p.round, p.validRound + 1, p.blockHash, p.blockBytes, p.signer, p.signature])
}

/** Decodes a consensus message's shape (signatures are checked by the engine). Throws CodecError. */
export function decodeMessage(bytes: Uint8Array, maxBlockBytes: number): ConsensusMessage {
  const a = asArray(decodeCanonical(bytes), 'consensus message')
  if (a[0] === 'vote') {
    asArray(a, 'vote message', 2)
    return { type: 'vote', vote: voteFromWire(a[1]) }
  }
  if (a[0] === 'proposal') {
    asArray(a, 'proposal message', 8)
    return {
      type: 'proposal',
      proposal: {
        height: asU64Number(a[1], 'proposal.height'),
        round: asU32(a[2], 'proposal.round'),
        validRound: asU32(a[3], 'proposal.validRound') - 1,
        blockHash: asBytes(a[4], 'proposal.blockHash', 32),
        blockBytes: asBytes(a[5], 'proposal.block', undefined, maxBlockBytes),
        signer: asBytes(a[6], 'proposal.signer', 32),
        signature: asBytes(a[7], 'proposal.signature', 64),
      },
    }
  }
  throw new CodecError('CODEC_SCHEMA', 'consensus message: expected proposal or vote')
}
