import { DOMAIN, signingBytes, verifyEd25519 } from '../../crypto/index.js'
import { equalBytes, fromHex, toHex } from '../../util/index.js'
import { CodecError, asArray, asBool, asBytes, asEnum, asString, asU64Number, decodeCanonical, encodeTrusted, u64, type Encodable } from '../codec.js'
import { BLOCK_TIME_RING, blockTimeAt } from '../block-times.js'
import { TxError } from '../errors.js'
import type { ChainParams } from '../params.js'
import { ORG_ID_RE, getOrg, orgBySignKey } from '../orgs.js'
import type { StateMap, StateOverlay } from '../state.js'
import { getEnvelopeKeys } from './kem.js'
import { getStudy, isErased, type StudyRecord } from './study.js'
import type { TxContext, TxType } from './types.js'

/*
 * Leases: time-limited, scoped access of a requesting organization to a study
 * kept by another, under the patient's consent. Judged in chain time (block
 * header time), never a clock.
 *
 * State:
 *   cs/<owner hex>/<study hex>      consent policy of a study, set with the study's own owner key
 *                                   (no policy for "all my studies" on the ledger: it would link them;
 *                                   the patient's tool sets one per study instead)
 *   ls/<lease id hex>               a lease (the id is the request transaction's id)
 */

/** What a lease opens: de-identified images, or images with the demographics. */
export type LeaseScope = 'images' | 'full'
export const LEASE_SCOPES: readonly LeaseScope[] = ['images', 'full']
/** Where a lease stands. */
export type LeaseStatus = 'requested' | 'granted' | 'denied' | 'revoked'
const STATUSES: readonly LeaseStatus[] = ['requested', 'granted', 'denied', 'revoked']

/** Shortest and longest lease. */
export const MIN_LEASE_MS = 10_000
export const MAX_LEASE_MS = 366 * 24 * 3600_000
/** Longest purpose or reason text, UTF-8 bytes. */
export const MAX_PURPOSE_BYTES = 200

/** A patient's consent policy. */
export interface ConsentPolicy {
  /** The study it is for (signed by that study's owner key). */
  readonly studyId: Uint8Array
  /** Any admitted organization may be granted without asking... */
  readonly anyOrg: boolean
  /** ...or these organizations. */
  readonly orgs: readonly string[]
  /** Purposes granted without asking (empty: any purpose). */
  readonly purposes: readonly string[]
  /** Scopes granted without asking. */
  readonly scopes: readonly LeaseScope[]
  /** Longest lease granted without asking. */
  readonly maxDurationMs: number
  /** Opt-in to a research pool. */
  readonly researchPool: boolean
}

/** A lease as the state keeps it. */
export interface LeaseRecord {
  readonly leaseId: Uint8Array
  readonly studyId: Uint8Array
  readonly requester: string
  readonly scope: LeaseScope
  readonly durationMs: number
  readonly purpose: string
  readonly status: LeaseStatus
  /** Chain time and height of the request. */
  readonly requestedAt: number
  readonly requestHeight: number
  /** The owner approved it (needed when the consent policy does not cover it). */
  readonly approved: boolean
  /** Chain time of the grant and the end of the lease (0 until granted). */
  readonly grantedAt: number
  readonly expiry: number
  /** Hash of the key envelope for the requester (null until granted). */
  readonly envelope: Uint8Array | null
  /** Chain time of the denial or revocation (0 otherwise), and its reason. */
  readonly endedAt: number
  readonly reason: string
}

const CONSENT_KEY = (owner: Uint8Array, studyId: Uint8Array): string => `cs/${toHex(owner)}/${toHex(studyId)}`
const LEASE_KEY = (id: Uint8Array): string => `ls/${toHex(id)}`
const EMPTY = new Uint8Array(0)

function orgIdOf(v: unknown, what: string): string {
  const id = asString(v, what, 63)
  if (!ORG_ID_RE.test(id)) throw new CodecError('CODEC_SCHEMA', `${what} must match ${ORG_ID_RE}`)
  return id
}

function duration(v: unknown, what: string): number {
  const n = asU64Number(v, what)
  if (n < MIN_LEASE_MS || n > MAX_LEASE_MS) throw new CodecError('CODEC_SCHEMA', `${what} must be between ${MIN_LEASE_MS} and ${MAX_LEASE_MS} ms`)
  return n
}

function policyToWire(p: ConsentPolicy): Encodable {
  return [p.studyId, p.anyOrg, [...p.orgs], [...p.purposes], [...p.scopes], u64(p.maxDurationMs), p.researchPool]
}

function policyFromWire(raw: unknown): ConsentPolicy {
  const a = asArray(raw, 'consent', 7)
  const sid = asBytes(a[0], 'consent.studyId', 16)
  const scopes = asArray(a[4], 'consent.scopes', undefined, 2).map((x) => asEnum(x, 'consent.scope', LEASE_SCOPES))
  if (new Set(scopes).size !== scopes.length) throw new CodecError('CODEC_SCHEMA', 'consent.scopes: repeated scope')
  return {
    studyId: sid,
    anyOrg: asBool(a[1], 'consent.anyOrg'),
    orgs: asArray(a[2], 'consent.orgs', undefined, 64).map((x) => orgIdOf(x, 'consent.org')),
    purposes: asArray(a[3], 'consent.purposes', undefined, 16).map((x) => asString(x, 'consent.purpose', MAX_PURPOSE_BYTES)),
    scopes,
    maxDurationMs: asU64Number(a[5], 'consent.maxDurationMs'),
    researchPool: asBool(a[6], 'consent.researchPool'),
  }
}

function policyToJSON(p: ConsentPolicy): Record<string, unknown> {
  return {
    studyId: toHex(p.studyId),
    anyOrg: p.anyOrg,
    orgs: p.orgs,
    purposes: p.purposes,
    scopes: p.scopes,
    maxDurationMs: p.maxDurationMs,
    researchPool: p.researchPool,
  }
}

function leaseToWire(l: LeaseRecord): Encodable {
  return [
    l.leaseId,
    l.studyId,
    l.requester,
    l.scope,
    u64(l.durationMs),
    l.purpose,
    l.status,
    u64(l.requestedAt),
    u64(l.requestHeight),
    l.approved,
    u64(l.grantedAt),
    u64(l.expiry),
    l.envelope ?? EMPTY,
    u64(l.endedAt),
    l.reason,
  ]
}

function leaseFromWire(raw: unknown): LeaseRecord {
  const a = asArray(raw, 'lease', 15)
  const env = asBytes(a[12], 'lease.envelope', undefined, 32)
  return {
    leaseId: asBytes(a[0], 'lease.id', 32),
    studyId: asBytes(a[1], 'lease.studyId', 16),
    requester: orgIdOf(a[2], 'lease.requester'),
    scope: asEnum(a[3], 'lease.scope', LEASE_SCOPES),
    durationMs: asU64Number(a[4], 'lease.durationMs'),
    purpose: asString(a[5], 'lease.purpose', MAX_PURPOSE_BYTES),
    status: asEnum(a[6], 'lease.status', STATUSES),
    requestedAt: asU64Number(a[7], 'lease.requestedAt'),
    requestHeight: asU64Number(a[8], 'lease.requestHeight'),
    approved: asBool(a[9], 'lease.approved'),
    grantedAt: asU64Number(a[10], 'lease.grantedAt'),
    expiry: asU64Number(a[11], 'lease.expiry'),
    envelope: env.length === 0 ? null : asBytes(env, 'lease.envelope', 32),
    endedAt: asU64Number(a[13], 'lease.endedAt'),
    reason: asString(a[14], 'lease.reason', MAX_PURPOSE_BYTES),
  }
}

/** A lease as JSON: ids and hashes in hex, times in ms, null for what is not set yet. */
export interface LeaseJSON {
  readonly leaseId: string
  readonly studyId: string
  readonly requester: string
  readonly scope: LeaseScope
  readonly durationMs: number
  readonly purpose: string
  /** `expired` once `now` is past the expiry of a granted lease. */
  readonly status: LeaseStatus | 'expired'
  readonly requestedAt: number
  readonly requestHeight: number
  readonly approved: boolean
  readonly grantedAt: number | null
  readonly expiry: number | null
  readonly envelope: string | null
  readonly endedAt: number | null
  readonly reason: string | null
}

/** JSON view of a lease (its status `expired` when `now`, in chain time, is past the expiry of a granted lease). */
export function leaseToJSON(l: LeaseRecord, now?: number): LeaseJSON {
  return {
    leaseId: toHex(l.leaseId),
    studyId: toHex(l.studyId),
    requester: l.requester,
    scope: l.scope,
    durationMs: l.durationMs,
    purpose: l.purpose,
    status: now !== undefined && l.status === 'granted' && now >= l.expiry ? 'expired' : l.status,
    requestedAt: l.requestedAt,
    requestHeight: l.requestHeight,
    approved: l.approved,
    grantedAt: l.grantedAt === 0 ? null : l.grantedAt,
    expiry: l.expiry === 0 ? null : l.expiry,
    envelope: l.envelope === null ? null : toHex(l.envelope),
    endedAt: l.endedAt === 0 ? null : l.endedAt,
    reason: l.reason === '' ? null : l.reason,
  }
}

/** A lease by id. */
export function getLease(s: StateMap | StateOverlay, leaseId: Uint8Array): LeaseRecord | undefined {
  const b = s.get(LEASE_KEY(leaseId))
  return b === undefined ? undefined : leaseFromWire(decodeCanonical(b))
}

/** Every lease (of one study when given), oldest request first. */
export function listLeases(s: StateMap, studyId?: Uint8Array): LeaseRecord[] {
  const out: LeaseRecord[] = []
  for (const [k, v] of s) {
    if (!k.startsWith('ls/')) continue
    const l = leaseFromWire(decodeCanonical(v))
    if (studyId === undefined || equalBytes(l.studyId, studyId)) out.push(l)
  }
  return out.sort((a, b) => a.requestHeight - b.requestHeight || Buffer.compare(a.leaseId, b.leaseId))
}

/** Whether a lease opens its study at chain time `time`. */
export function leaseActive(l: LeaseRecord, time: number): boolean {
  return l.status === 'granted' && time < l.expiry
}

/** The consent policy the owner key `owner` set for its study. */
export function consentFor(s: StateMap | StateOverlay, owner: Uint8Array, studyId: Uint8Array): ConsentPolicy | undefined {
  const b = s.get(CONSENT_KEY(owner, studyId))
  return b === undefined ? undefined : policyFromWire(decodeCanonical(b))
}

/**
 * Whether the owner's consent covers a lease request without asking: the
 * organization, scope, duration and purpose within the policy. Returns the
 * reason when it does not.
 */
export function consentCovers(
  policy: ConsentPolicy | undefined,
  l: Pick<LeaseRecord, 'requester' | 'scope' | 'durationMs' | 'purpose'>,
): { ok: true } | { ok: false; reason: string } {
  if (policy === undefined) return { ok: false, reason: 'the patient has set no consent policy' }
  if (!policy.anyOrg && !policy.orgs.includes(l.requester)) return { ok: false, reason: `the consent policy does not name ${l.requester}` }
  if (!policy.scopes.includes(l.scope)) return { ok: false, reason: `the consent policy does not allow the ${l.scope} scope` }
  if (l.durationMs > policy.maxDurationMs) return { ok: false, reason: `the consent policy allows at most ${policy.maxDurationMs} ms` }
  if (policy.purposes.length > 0 && !policy.purposes.includes(l.purpose)) return { ok: false, reason: 'the consent policy does not list this purpose' }
  return { ok: true }
}

function studyOf(ctx: TxContext, studyId: Uint8Array): StudyRecord {
  if (isErased(ctx.state, studyId)) throw new TxError('TX_INVALID', `study ${toHex(studyId)} was erased`)
  const st = getStudy(ctx.state, studyId)
  if (st === undefined) throw new TxError('TX_INVALID', `no study ${toHex(studyId)} on the ledger`)
  return st
}

function leaseOf(ctx: TxContext, leaseId: Uint8Array): { lease: LeaseRecord; study: StudyRecord } {
  const lease = getLease(ctx.state, leaseId)
  if (lease === undefined) throw new TxError('TX_INVALID', `no lease ${toHex(leaseId)}`)
  return { lease, study: studyOf(ctx, lease.studyId) }
}

function put(ctx: TxContext, l: LeaseRecord): void {
  ctx.state.set(LEASE_KEY(l.leaseId), encodeTrusted(leaseToWire(l)))
}

function senderOrg(ctx: TxContext): string | undefined {
  return orgBySignKey(ctx.state, ctx.sender)?.id
}

function isOwner(ctx: TxContext, st: StudyRecord): boolean {
  return st.owner !== null && equalBytes(st.owner, ctx.sender)
}

/** `consent.set`: a patient sets the consent policy of one of their studies, signed with that study's owner key. */
export const consentTx: TxType<ConsentPolicy> = {
  name: 'consent.set',
  decode: policyFromWire,
  encode: policyToWire,
  toJSON: policyToJSON,
  apply(ctx, p) {
    const st = studyOf(ctx, p.studyId)
    if (!isOwner(ctx, st)) throw new TxError('TX_UNAUTHORIZED', 'only the patient who owns the study sets its consent')
    if (p.maxDurationMs > MAX_LEASE_MS) throw new TxError('TX_INVALID', 'maxDurationMs too long')
    ctx.state.set(CONSENT_KEY(ctx.sender, p.studyId), encodeTrusted(policyToWire(p)))
  },
}

/** Payload of a lease request. */
export interface LeaseRequestPayload {
  readonly studyId: Uint8Array
  readonly scope: LeaseScope
  readonly durationMs: number
  readonly purpose: string
}

/** `lease.request`: an organization asks for a study kept by another. The lease id is this transaction's id. */
export const leaseRequestTx: TxType<LeaseRequestPayload> = {
  name: 'lease.request',
  decode(raw) {
    const a = asArray(raw, 'lease.request', 4)
    return {
      studyId: asBytes(a[0], 'lease.request.studyId', 16),
      scope: asEnum(a[1], 'lease.request.scope', LEASE_SCOPES),
      durationMs: duration(a[2], 'lease.request.durationMs'),
      purpose: asString(a[3], 'lease.request.purpose', MAX_PURPOSE_BYTES),
    }
  },
  encode: (p) => [p.studyId, p.scope, u64(p.durationMs), p.purpose],
  toJSON: (p) => ({ studyId: toHex(p.studyId), scope: p.scope, durationMs: p.durationMs, purpose: p.purpose }),
  apply(ctx, p) {
    const requester = senderOrg(ctx)
    if (requester === undefined) throw new TxError('TX_UNAUTHORIZED', 'a lease is requested by an admitted organization')
    const st = studyOf(ctx, p.studyId)
    if (st.custodian === requester) throw new TxError('TX_INVALID', 'the custodian needs no lease for its own study')
    put(ctx, {
      leaseId: ctx.txId,
      studyId: p.studyId,
      requester,
      scope: p.scope,
      durationMs: p.durationMs,
      purpose: p.purpose,
      status: 'requested',
      requestedAt: ctx.time,
      requestHeight: ctx.height,
      approved: false,
      grantedAt: 0,
      expiry: 0,
      envelope: null,
      endedAt: 0,
      reason: '',
    })
  },
}

/** Payload naming a lease. */
export interface LeaseRef {
  readonly leaseId: Uint8Array
}

function leaseRef(name: string): Pick<TxType<LeaseRef>, 'decode' | 'encode' | 'toJSON'> {
  return {
    decode(raw) {
      const a = asArray(raw, name, 1)
      return { leaseId: asBytes(a[0], `${name}.leaseId`, 32) }
    },
    encode: (p) => [p.leaseId],
    toJSON: (p) => ({ leaseId: toHex(p.leaseId) }),
  }
}

/** `lease.approve`: the patient who owns the study approves a request their policy does not cover. */
export const leaseApproveTx: TxType<LeaseRef> = {
  name: 'lease.approve',
  ...leaseRef('lease.approve'),
  apply(ctx, p) {
    const { lease, study } = leaseOf(ctx, p.leaseId)
    if (!isOwner(ctx, study)) throw new TxError('TX_UNAUTHORIZED', 'only the patient who owns the study approves a lease')
    if (lease.status !== 'requested') throw new TxError('TX_INVALID', `lease is ${lease.status}, not requested`)
    put(ctx, { ...lease, approved: true })
  },
}

/** Payload of a grant. */
export interface LeaseGrantPayload {
  readonly leaseId: Uint8Array
  /** sha256 of the key envelope wrapped to the requester (kept off the ledger, beside the study's chunks). */
  readonly envelope: Uint8Array
}

/**
 * `lease.grant`: the custodian grants a requested lease; it ends at chain
 * time (this block's time + the requested duration). With an owner, the
 * owner's consent policy must cover the request or the owner must have
 * approved it.
 */
export const leaseGrantTx: TxType<LeaseGrantPayload> = {
  name: 'lease.grant',
  decode(raw) {
    const a = asArray(raw, 'lease.grant', 2)
    return { leaseId: asBytes(a[0], 'lease.grant.leaseId', 32), envelope: asBytes(a[1], 'lease.grant.envelope', 32) }
  },
  encode: (p) => [p.leaseId, p.envelope],
  toJSON: (p) => ({ leaseId: toHex(p.leaseId), envelope: toHex(p.envelope) }),
  apply(ctx, p) {
    const { lease, study } = leaseOf(ctx, p.leaseId)
    if (senderOrg(ctx) !== study.custodian) throw new TxError('TX_UNAUTHORIZED', 'only the custodian grants a lease on its study')
    if (lease.status !== 'requested') throw new TxError('TX_INVALID', `lease is ${lease.status}, not requested`)
    if (getOrg(ctx.state, lease.requester) === undefined) throw new TxError('TX_INVALID', `${lease.requester} is no longer admitted`)
    if (getEnvelopeKeys(ctx.state, lease.requester) === undefined) throw new TxError('TX_INVALID', `${lease.requester} has published no envelope key`)
    if (study.owner !== null && !lease.approved) {
      const c = consentCovers(consentFor(ctx.state, study.owner, study.studyId), lease)
      if (!c.ok) throw new TxError('TX_UNAUTHORIZED', `${c.reason}: the patient must approve this lease`)
    }
    put(ctx, { ...lease, status: 'granted', grantedAt: ctx.time, expiry: ctx.time + lease.durationMs, envelope: p.envelope })
  },
}

/** Payload of a denial. */
export interface LeaseDenyPayload {
  readonly leaseId: Uint8Array
  readonly reason: string
}

/** `lease.deny`: the custodian or the owner refuses a request. */
export const leaseDenyTx: TxType<LeaseDenyPayload> = {
  name: 'lease.deny',
  decode(raw) {
    const a = asArray(raw, 'lease.deny', 2)
    return { leaseId: asBytes(a[0], 'lease.deny.leaseId', 32), reason: asString(a[1], 'lease.deny.reason', MAX_PURPOSE_BYTES) }
  },
  encode: (p) => [p.leaseId, p.reason],
  toJSON: (p) => ({ leaseId: toHex(p.leaseId), reason: p.reason }),
  apply(ctx, p) {
    const { lease, study } = leaseOf(ctx, p.leaseId)
    if (senderOrg(ctx) !== study.custodian && !isOwner(ctx, study)) throw new TxError('TX_UNAUTHORIZED', 'only the custodian or the owner denies a lease')
    if (lease.status !== 'requested') throw new TxError('TX_INVALID', `lease is ${lease.status}, not requested`)
    put(ctx, { ...lease, status: 'denied', endedAt: ctx.time, reason: p.reason })
  },
}

/** `lease.revoke`: the custodian or the owner ends a granted lease before its expiry. */
export const leaseRevokeTx: TxType<LeaseRef> = {
  name: 'lease.revoke',
  ...leaseRef('lease.revoke'),
  apply(ctx, p) {
    const { lease, study } = leaseOf(ctx, p.leaseId)
    if (senderOrg(ctx) !== study.custodian && !isOwner(ctx, study)) throw new TxError('TX_UNAUTHORIZED', 'only the custodian or the owner revokes a lease')
    if (lease.status !== 'granted') throw new TxError('TX_INVALID', `lease is ${lease.status}, not granted`)
    if (ctx.time >= lease.expiry) throw new TxError('TX_INVALID', 'lease already expired')
    put(ctx, { ...lease, status: 'revoked', endedAt: ctx.time })
  },
}

/** What an access record records. */
export type AccessKind = 'unwrap' | 'retrieve'
const ACCESS_KINDS: readonly AccessKind[] = ['unwrap', 'retrieve']

/** Payload of an access record. */
export interface AccessPayload {
  readonly leaseId: Uint8Array
  readonly what: AccessKind
}

/** `access.record`: the lessee's node records a key unwrap or a completed retrieval under an active lease. */
export const accessTx: TxType<AccessPayload> = {
  name: 'access.record',
  decode(raw) {
    const a = asArray(raw, 'access.record', 2)
    return { leaseId: asBytes(a[0], 'access.record.leaseId', 32), what: asEnum(a[1], 'access.record.what', ACCESS_KINDS) }
  },
  encode: (p) => [p.leaseId, p.what],
  toJSON: (p) => ({ leaseId: toHex(p.leaseId), what: p.what }),
  apply(ctx, p) {
    const { lease } = leaseOf(ctx, p.leaseId)
    if (senderOrg(ctx) !== lease.requester) throw new TxError('TX_UNAUTHORIZED', 'only the lessee records access under its lease')
    if (!leaseActive(lease, ctx.time)) throw new TxError('TX_INVALID', 'lease is not active')
  },
}

/** The lease id as hex, or throws CodecError (for API input). */
export function leaseIdFromHex(hex: string): Uint8Array {
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new CodecError('CODEC_SCHEMA', 'a lease id is 64 hex digits')
  return fromHex(hex)
}

/**
 * Evidence that an organization asked for a chunk under a lease that had
 * ended: its own signed request, which names the latest block it knew.
 */
export interface ViolationPayload {
  readonly requester: string
  readonly studyId: Uint8Array
  readonly index: number
  readonly leaseId: Uint8Array
  /** Chain time the requester put in its request (its head's time; not what the violation is judged on). */
  readonly time: number
  /** Height of the block the requester named (its head): the violation is judged on that block's chain time. */
  readonly height: number
  /** Signing key of the holder the request was sent to. */
  readonly holder: Uint8Array
  /** Its Ed25519 signature over signingBytes(LEASE_CHUNK_REQUEST, leaseClaimBytes(studyId, index, leaseId, time, height, holder)). */
  readonly signature: Uint8Array
}

const VIOLATION_KEY = (leaseId: Uint8Array): string => `vr/${toHex(leaseId)}`

/** Length of the bytes a lessee signs in a chunk request under a lease. */
export const LEASE_CLAIM_BYTES = 16 + 4 + 32 + 8 + 8 + 32

/**
 * The bytes a lessee signs when it asks for a chunk under a lease (the p2p
 * chunk request's first LEASE_CLAIM_BYTES bytes): studyId(16) || u32 index ||
 * leaseId(32) || u64 time || u64 height || holder(32), big-endian, where
 * time and height are those of the lessee's chain head and holder is the
 * signing key of the organization asked (a claim is good for that holder
 * only).
 */
export function leaseClaimBytes(studyId: Uint8Array, index: number, leaseId: Uint8Array, time: number, height: number, holder: Uint8Array): Uint8Array {
  const b = Buffer.alloc(LEASE_CLAIM_BYTES)
  b.set(studyId, 0)
  b.writeUInt32BE(index, 16)
  b.set(leaseId, 20)
  b.writeBigUInt64BE(BigInt(time), 52)
  b.writeBigUInt64BE(BigInt(height), 60)
  b.set(holder, 68)
  return new Uint8Array(b)
}

/**
 * How far a lease claim's time may be from a holder's head time (ms): the
 * clock drift the chain tolerates plus one heartbeat, the most two nodes
 * that are both in step differ by (one has the newest block, the other not
 * yet).
 */
export function claimWindowMs(p: Pick<ChainParams, 'maxClockDriftMs' | 'blockIntervalMs'>): number {
  return p.maxClockDriftMs + p.blockIntervalMs
}

/** Whether a lease opened its study at chain time `time` (granted and not expired, or revoked later). */
export function leaseOpenAt(l: LeaseRecord, time: number): boolean {
  if (l.status === 'granted') return time < l.expiry
  if (l.status === 'revoked') return time >= l.grantedAt && time < l.endedAt
  return false
}

/** Whether a lease had ended by chain time `time`: granted and expired by then, or revoked by then. */
export function leaseEndedBy(l: LeaseRecord, time: number): boolean {
  if (l.status === 'granted') return time >= l.expiry
  if (l.status === 'revoked') return time >= l.endedAt
  return false
}

/** Whether a violation was already reported for a lease (one report per lease). */
export function violationReported(s: StateMap | StateOverlay, leaseId: Uint8Array): boolean {
  return s.get(VIOLATION_KEY(leaseId)) !== undefined
}

/**
 * `violation.report`: a holder puts on the ledger the signed request of an
 * organization that asked for a chunk under a lease that had ended. The
 * request names a block (the requester's head); the violation is judged on
 * that block's chain time, which the state keeps for the last
 * BLOCK_TIME_RING blocks, not on the time the request states: a request
 * that names a block made at or after the lease ended is a violation
 * whatever time it claims, and a request made while the lease was open (an
 * honest one just before the end, or an old one replayed) names an earlier
 * block and never is. Any node checks the signature against the
 * requester's key and the lease's state. One report per lease.
 */
export const violationTx: TxType<ViolationPayload> = {
  name: 'violation.report',
  decode(raw) {
    const a = asArray(raw, 'violation.report', 8)
    return {
      requester: orgIdOf(a[0], 'violation.requester'),
      studyId: asBytes(a[1], 'violation.studyId', 16),
      index: asU64Number(a[2], 'violation.index'),
      leaseId: asBytes(a[3], 'violation.leaseId', 32),
      time: asU64Number(a[4], 'violation.time'),
      height: asU64Number(a[5], 'violation.height'),
      holder: asBytes(a[6], 'violation.holder', 32),
      signature: asBytes(a[7], 'violation.signature', 64),
    }
  },
  encode: (p) => [p.requester, p.studyId, u64(p.index), p.leaseId, u64(p.time), u64(p.height), p.holder, p.signature],
  toJSON: (p) => ({
    requester: p.requester,
    studyId: toHex(p.studyId),
    index: p.index,
    leaseId: toHex(p.leaseId),
    time: p.time,
    height: p.height,
    holder: toHex(p.holder),
    signature: toHex(p.signature),
  }),
  apply(ctx, p) {
    if (senderOrg(ctx) === undefined) throw new TxError('TX_UNAUTHORIZED', 'a violation is reported by an admitted organization')
    const lease = getLease(ctx.state, p.leaseId)
    if (lease === undefined || lease.requester !== p.requester || !equalBytes(lease.studyId, p.studyId))
      throw new TxError('TX_INVALID', 'the evidence does not match a lease of that organization on that study')
    const requester = getOrg(ctx.state, p.requester)
    if (requester === undefined) throw new TxError('TX_INVALID', `${p.requester} is not admitted`)
    if (p.index > 0xffffffff) throw new TxError('TX_INVALID', 'chunk index out of range')
    if (
      !verifyEd25519(
        requester.signKey,
        signingBytes(DOMAIN.LEASE_CHUNK_REQUEST, leaseClaimBytes(p.studyId, p.index, p.leaseId, p.time, p.height, p.holder)),
        p.signature,
      )
    ) {
      throw new TxError('TX_INVALID', "the request signature does not verify with the requester's key")
    }
    if (p.height >= ctx.height) throw new TxError('TX_INVALID', 'the request names a block that was not final before this one')
    const named = blockTimeAt(ctx.state, p.height)
    if (named === undefined) throw new TxError('TX_INVALID', `the request names a block older than the last ${BLOCK_TIME_RING}: too old to judge`)
    if (!leaseEndedBy(lease, named)) throw new TxError('TX_INVALID', 'the lease was open at the block the request names: no violation')
    if (violationReported(ctx.state, p.leaseId)) throw new TxError('TX_INVALID', 'a violation of this lease is already on the ledger')
    ctx.state.set(VIOLATION_KEY(p.leaseId), encodeTrusted([p.requester, u64(p.height), u64(named)]))
  },
}
