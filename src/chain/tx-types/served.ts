import { DOMAIN, signingBytes, verifyEd25519 } from '../../crypto/index.js'
import { toHex } from '../../util/index.js'
import { asArray, asBool, asBytes, asU32, asU64Number, decodeCanonical, encodeTrusted, u64 } from '../codec.js'
import { TxError } from '../errors.js'
import { getOrg, orgBySignKey } from '../orgs.js'
import type { StateMap, StateOverlay } from '../state.js'
import { claimWindowMs, getLease, leaseClaimBytes, leaseOpenAt } from './lease.js'
import { getStudy, isErased } from './study.js'
import type { TxType } from './types.js'

/*
 * What a holder served under a lease, put on the ledger by the holder
 * itself, so that a lessee's use of a study is recorded whether or not the
 * lessee's node records it (`access.record` is the lessee's word; this is
 * the holder's, backed by the lessee's signature).
 *
 * State:
 *   sv/<lease id hex>/<holder org id>   totals of the holder's summaries for the lease, and the last window and claim used
 */

/** A lessee's signed chunk claim, as a holder received it (the lease and study come from the lease; the holder is the sender). */
export interface ServedClaim {
  readonly index: number
  readonly time: number
  readonly height: number
  readonly signature: Uint8Array
}

/** Payload of a served summary: one holder, one lease, one window of serving. */
export interface ServedPayload {
  readonly leaseId: Uint8Array
  /** Chain time (the holder's head) of the first and the last request served in the window. */
  readonly first: number
  readonly last: number
  /** Distinct chunks served in the window, and their bytes (each chunk counted once). */
  readonly chunks: number
  readonly bytes: number
  /** The lessee's key envelope was served in the window. */
  readonly envelope: boolean
  /** The demographics record was served in the window (full scope only). */
  readonly demographics: boolean
  /** The latest chunk claim the lessee signed for this holder in the window: evidence that it asked. */
  readonly claim: ServedClaim
}

/** Totals of one holder's served summaries for one lease, as the state keeps them. */
export interface ServedTotals {
  readonly summaries: number
  readonly chunks: number
  readonly bytes: number
  /** End of the last window recorded. */
  readonly last: number
  /** The last claim used as evidence (time, then index): each summary needs a later one. */
  readonly claimTime: number
  readonly claimIndex: number
}

const SERVED_KEY = (leaseId: Uint8Array, holder: string): string => `sv/${toHex(leaseId)}/${holder}`

/** One holder's served totals for a lease, if it recorded any. */
export function getServed(s: StateMap | StateOverlay, leaseId: Uint8Array, holder: string): ServedTotals | undefined {
  const b = s.get(SERVED_KEY(leaseId, holder))
  if (b === undefined) return undefined
  const a = asArray(decodeCanonical(b), 'served', 6)
  return {
    summaries: asU64Number(a[0], 'served.summaries'),
    chunks: asU64Number(a[1], 'served.chunks'),
    bytes: asU64Number(a[2], 'served.bytes'),
    last: asU64Number(a[3], 'served.last'),
    claimTime: asU64Number(a[4], 'served.claimTime'),
    claimIndex: asU64Number(a[5], 'served.claimIndex'),
  }
}

/**
 * `access.served`: a holder records what it served to a lessee under a
 * lease in one window of chain time. Every node checks that the lessee
 * signed the claim for this holder (so an organization the lessee did not
 * ask cannot record), that the lease was open over the window, that the
 * counts fit the study (never more distinct chunks than it has, nor more
 * bytes than its ciphertext; the demographics record only under a full
 * lease), and that the window and the claim come after the holder's
 * previous summary for the lease: there are never more summaries than
 * distinct claims the lessee signed.
 */
export const servedTx: TxType<ServedPayload> = {
  name: 'access.served',
  decode(raw) {
    const a = asArray(raw, 'access.served', 11)
    return {
      leaseId: asBytes(a[0], 'access.served.leaseId', 32),
      first: asU64Number(a[1], 'access.served.first'),
      last: asU64Number(a[2], 'access.served.last'),
      chunks: asU32(a[3], 'access.served.chunks'),
      bytes: asU64Number(a[4], 'access.served.bytes'),
      envelope: asBool(a[5], 'access.served.envelope'),
      demographics: asBool(a[6], 'access.served.demographics'),
      claim: {
        index: asU32(a[7], 'access.served.claim.index'),
        time: asU64Number(a[8], 'access.served.claim.time'),
        height: asU64Number(a[9], 'access.served.claim.height'),
        signature: asBytes(a[10], 'access.served.claim.signature', 64),
      },
    }
  },
  encode: (p) => [
    p.leaseId,
    u64(p.first),
    u64(p.last),
    p.chunks,
    u64(p.bytes),
    p.envelope,
    p.demographics,
    p.claim.index,
    u64(p.claim.time),
    u64(p.claim.height),
    p.claim.signature,
  ],
  toJSON: (p) => ({
    leaseId: toHex(p.leaseId),
    first: p.first,
    last: p.last,
    chunks: p.chunks,
    bytes: p.bytes,
    envelope: p.envelope,
    demographics: p.demographics,
    claim: { index: p.claim.index, time: p.claim.time, height: p.claim.height, signature: toHex(p.claim.signature) },
  }),
  apply(ctx, p) {
    const holder = orgBySignKey(ctx.state, ctx.sender)
    if (holder === undefined) throw new TxError('TX_UNAUTHORIZED', 'what was served is recorded by an admitted organization')
    const lease = getLease(ctx.state, p.leaseId)
    if (lease === undefined) throw new TxError('TX_INVALID', `no lease ${toHex(p.leaseId)}`)
    if (isErased(ctx.state, lease.studyId)) throw new TxError('TX_INVALID', `study ${toHex(lease.studyId)} was erased`)
    const study = getStudy(ctx.state, lease.studyId)
    if (study === undefined) throw new TxError('TX_INVALID', `no study ${toHex(lease.studyId)} on the ledger`)
    if (holder.id === lease.requester) throw new TxError('TX_UNAUTHORIZED', 'the lessee does not record what it was served')
    const lessee = getOrg(ctx.state, lease.requester)
    if (lessee === undefined) throw new TxError('TX_INVALID', `${lease.requester} is not admitted`)
    const c = p.claim
    if (c.index >= study.chunkCount) throw new TxError('TX_INVALID', 'the claim names a chunk the study does not have')
    const signed = leaseClaimBytes(study.studyId, c.index, lease.leaseId, c.time, c.height, ctx.sender)
    if (!verifyEd25519(lessee.signKey, signingBytes(DOMAIN.LEASE_CHUNK_REQUEST, signed), c.signature)) {
      throw new TxError('TX_UNAUTHORIZED', "the claim is not the lessee's request to this holder")
    }
    if (p.first > p.last || p.last > ctx.time) throw new TxError('TX_INVALID', 'the window must end no later than this block and not before it starts')
    if (p.first < lease.grantedAt || !leaseOpenAt(lease, p.first) || !leaseOpenAt(lease, p.last))
      throw new TxError('TX_INVALID', 'the lease was not open over the whole window')
    const w = claimWindowMs(ctx.params)
    if (c.time + w < p.first || c.time > p.last + w) throw new TxError('TX_INVALID', 'the claim is not dated within the window')
    if (p.chunks === 0 && !p.envelope && !p.demographics) throw new TxError('TX_INVALID', 'an empty summary')
    if (p.chunks > study.chunkCount) throw new TxError('TX_INVALID', `${p.chunks} distinct chunks served; the study has ${study.chunkCount}`)
    if (p.bytes > study.size || (p.chunks === 0 && p.bytes !== 0)) throw new TxError('TX_INVALID', 'more bytes than the chunks served hold')
    if (p.demographics && lease.scope !== 'full') throw new TxError('TX_INVALID', 'the demographics record is served under a full lease only')
    const prev = getServed(ctx.state, lease.leaseId, holder.id)
    if (prev !== undefined) {
      if (p.first < prev.last) throw new TxError('TX_INVALID', "the window overlaps the holder's previous summary")
      if (c.time < prev.claimTime || (c.time === prev.claimTime && c.index <= prev.claimIndex))
        throw new TxError('TX_INVALID', 'the claim is not later than the one the previous summary used')
    }
    const totals: ServedTotals = {
      summaries: (prev?.summaries ?? 0) + 1,
      chunks: (prev?.chunks ?? 0) + p.chunks,
      bytes: (prev?.bytes ?? 0) + p.bytes,
      last: p.last,
      claimTime: c.time,
      claimIndex: c.index,
    }
    ctx.state.set(
      SERVED_KEY(lease.leaseId, holder.id),
      encodeTrusted([u64(totals.summaries), u64(totals.chunks), u64(totals.bytes), u64(totals.last), u64(totals.claimTime), u64(totals.claimIndex)]),
    )
  },
}
