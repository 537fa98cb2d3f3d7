import { toHex, equalBytes } from '../../util/index.js'
import { asArray } from '../codec.js'
import { voteFromWire, voteToWire, verifyVote, type SignedVote } from '../commit.js'
import { TxError } from '../errors.js'
import type { TxType } from './types.js'

/** Two conflicting signed votes from one authority: proof of equivocation. */
export interface EvidencePayload {
  readonly a: SignedVote
  readonly b: SignedVote
}

const EVIDENCE_KEY = (v: SignedVote): string => `ev/${toHex(v.signer)}/${v.height}/${v.round}/${v.kind}`

/**
 * `evidence`: any node records on the ledger that an authority signed two
 * different votes of the same kind for the same height and round. Both
 * signatures are checked here, so any node can verify the evidence offline.
 * Each equivocation is recorded once.
 */
export const evidenceTx: TxType<EvidencePayload> = {
  name: 'evidence',
  decode(raw) {
    const x = asArray(raw, 'evidence', 2)
    return { a: voteFromWire(x[0]), b: voteFromWire(x[1]) }
  },
  encode: (p) => [voteToWire(p.a), voteToWire(p.b)],
  toJSON: (p) => ({
    signer: toHex(p.a.signer),
    kind: p.a.kind,
    height: p.a.height,
    round: p.a.round,
    blockHashes: [p.a.blockHash === null ? null : toHex(p.a.blockHash), p.b.blockHash === null ? null : toHex(p.b.blockHash)],
  }),
  apply(ctx, { a, b }) {
    if (!equalBytes(a.signer, b.signer) || a.kind !== b.kind || a.height !== b.height || a.round !== b.round) {
      throw new TxError('TX_INVALID', 'evidence votes must be from one signer for the same kind, height and round')
    }
    const same = a.blockHash === null ? b.blockHash === null : b.blockHash !== null && equalBytes(a.blockHash, b.blockHash)
    if (same) throw new TxError('TX_INVALID', 'evidence votes do not conflict')
    if (a.height >= ctx.height) throw new TxError('TX_INVALID', 'evidence is for a height not yet reached')
    if (!ctx.authorities.members.some((m) => equalBytes(m.signKey, a.signer))) throw new TxError('TX_INVALID', 'evidence names a key that is not an authority')
    if (!verifyVote(a, ctx.chainId) || !verifyVote(b, ctx.chainId)) throw new TxError('TX_INVALID', 'evidence vote signature does not verify')
    const key = EVIDENCE_KEY(a)
    if (ctx.state.get(key) !== undefined) throw new TxError('TX_INVALID', 'this equivocation is already recorded')
    ctx.state.set(key, ctx.txId)
  },
}
