import { DOMAIN, taggedHash } from '../../crypto/index.js'
import { equalBytes, fromHex, toHex } from '../../util/index.js'
import { CodecError, asArray, asBytes, asEnum, asString, decodeCanonical, encodeTrusted, type Encodable } from '../codec.js'
import { TxError } from '../errors.js'
import { ORG_ID_RE, authoritySet, deleteOrg, getOrg, orgBySignKey, orgFromWire, orgToJSON, orgToWire, putOrg, type OrgRecord } from '../orgs.js'
import { PARAM_FIELDS, VOTABLE_PARAMS, getParams, paramFromWire, paramToWire, paramsProblem, putParams, type ChainParams, type ParamName } from '../params.js'
import type { StateMap, StateOverlay } from '../state.js'
import type { TxContext, TxType } from './types.js'

/**
 * Changes to the organization registry and the chain parameters. Every `org`
 * transaction is one authority's vote for one change; the change is made in
 * the block where more than 2/3 of the current authorities have voted for
 * it, and a change of the authority set or of the parameters takes effect
 * from the next height (a block runs under the parameters read at its start).
 */
export type OrgAction =
  /** Admit an organization as member or authority. */
  | { readonly kind: 'admit'; readonly org: OrgRecord }
  /** Remove an organization (member or authority). */
  | { readonly kind: 'remove'; readonly id: string }
  /** Replace an organization's keys. */
  | { readonly kind: 'rekey'; readonly id: string; readonly signKey: Uint8Array; readonly encKey: Uint8Array }
  /** Set new values of some chain parameters (VOTABLE_PARAMS); the others keep theirs. */
  | { readonly kind: 'params'; readonly params: Partial<ChainParams> }

/** The parameters a `params` action names, in wire order. */
function paramChanges(p: Partial<ChainParams>): [ParamName, number][] {
  return PARAM_FIELDS.flatMap((f): [ParamName, number][] => (p[f] === undefined ? [] : [[f, p[f]]]))
}

function actionToWire(a: OrgAction): Encodable {
  switch (a.kind) {
    case 'admit':
      return ['admit', orgToWire(a.org)]
    case 'remove':
      return ['remove', a.id]
    case 'rekey':
      return ['rekey', a.id, a.signKey, a.encKey]
    case 'params':
      return ['params', paramChanges(a.params).map(([f, v]) => [f, paramToWire(f, v)])]
  }
}

// [[name, value], ...]: at least one, each parameter once, in PARAM_FIELDS order (one encoding per change).
function paramsFromChanges(v: unknown): Partial<ChainParams> {
  const list = asArray(v, 'org params changes', undefined, PARAM_FIELDS.length)
  if (list.length === 0) throw new CodecError('CODEC_SCHEMA', 'org params: no parameter to change')
  const out: Partial<Record<ParamName, number>> = {}
  let last = -1
  for (const x of list) {
    const [name, value] = asArray(x, 'org params change', 2)
    const f = asEnum(name, 'org params name', PARAM_FIELDS)
    const i = PARAM_FIELDS.indexOf(f)
    if (i <= last) throw new CodecError('CODEC_SCHEMA', 'org params: each parameter once, in wire order')
    last = i
    out[f] = paramFromWire(f, value, `org params ${f}`)
  }
  return out
}

function orgId(v: unknown, what: string): string {
  const id = asString(v, what, 63)
  if (!ORG_ID_RE.test(id)) throw new CodecError('CODEC_SCHEMA', `${what} must match ${ORG_ID_RE}`)
  return id
}

function actionFromWire(v: unknown): OrgAction {
  const a = asArray(v, 'org action', undefined, 4)
  switch (a[0]) {
    case 'admit':
      asArray(v, 'org admit', 2)
      return { kind: 'admit', org: orgFromWire(a[1]) }
    case 'remove':
      asArray(v, 'org remove', 2)
      return { kind: 'remove', id: orgId(a[1], 'org remove id') }
    case 'rekey':
      asArray(v, 'org rekey', 4)
      return { kind: 'rekey', id: orgId(a[1], 'org rekey id'), signKey: asBytes(a[2], 'org rekey signKey', 32), encKey: asBytes(a[3], 'org rekey encKey', 32) }
    case 'params':
      asArray(v, 'org params', 2)
      return { kind: 'params', params: paramsFromChanges(a[1]) }
    default:
      throw new CodecError('CODEC_SCHEMA', 'org action: expected admit, remove, rekey or params')
  }
}

/** Id of a proposed change: the hash its votes are collected under. */
export function proposalId(a: OrgAction): Uint8Array {
  return taggedHash(DOMAIN.ORG_PROPOSAL, encodeTrusted(actionToWire(a)))
}

const PROPOSAL_KEY = (id: Uint8Array): string => `p/${toHex(id)}`

function loadVoters(s: StateOverlay, key: string): string[] {
  const b = s.get(key)
  if (b === undefined) return []
  const a = asArray(decodeCanonical(b), 'proposal', 2)
  return asArray(a[1], 'proposal voters').map((x) => asString(x, 'voter', 63))
}

// Checks that the action can be made on the current state.
function checkAction(s: StateOverlay, a: OrgAction): void {
  switch (a.kind) {
    case 'admit':
      if (getOrg(s, a.org.id) !== undefined) throw new TxError('TX_INVALID', `organization ${a.org.id} is already admitted`)
      if (orgBySignKey(s, a.org.signKey) !== undefined) throw new TxError('TX_INVALID', 'that signing key belongs to another organization')
      return
    case 'remove':
      if (getOrg(s, a.id) === undefined) throw new TxError('TX_INVALID', `organization ${a.id} is not admitted`)
      return
    case 'rekey': {
      if (getOrg(s, a.id) === undefined) throw new TxError('TX_INVALID', `organization ${a.id} is not admitted`)
      const other = orgBySignKey(s, a.signKey)
      if (other !== undefined && other.id !== a.id) throw new TxError('TX_INVALID', 'that signing key belongs to another organization')
      return
    }
    case 'params':
      newParams(s, a.params)
      return
  }
}

// Why a parameter cannot be voted (see VOTABLE_PARAMS).
const FIXED_BY_GENESIS: Partial<Record<ParamName, string>> = {
  maxBlockBytes: 'running nodes size their consensus message bound from it once, at start',
  maxTxBytes: 'running nodes size their transaction message bound from it once, at start',
  chunkSize: 'registered studies are cut in chunks of this size',
}

// The parameters in force with the voted changes, checked as a genesis is.
function newParams(s: StateOverlay, changes: Partial<ChainParams>): ChainParams {
  const current = getParams(s)
  for (const [f] of paramChanges(changes)) {
    if (!VOTABLE_PARAMS.has(f))
      throw new TxError('TX_INVALID', `params.${f} cannot be changed by a vote: ${FIXED_BY_GENESIS[f] ?? 'it is fixed by the genesis'}`)
  }
  const next: ChainParams = { ...current, ...changes }
  // Registered studies stay on the ledger and are served under the bounds in force: the bounds only grow.
  for (const f of ['maxStudyBytes', 'maxStudyChunks'] as const) {
    if (next[f] < current[f])
      throw new TxError('TX_INVALID', `params.${f} may only be raised (from ${current[f]}): studies registered under it stay on the ledger`)
  }
  const problem = paramsProblem(next)
  if (problem !== undefined) throw new TxError('TX_INVALID', problem)
  if (paramChanges(changes).every(([f, v]) => current[f] === v)) throw new TxError('TX_INVALID', 'params: these values are already in force')
  return next
}

// Authority-set safety: a block may not remove more than a third of the set
// in force at its start, nor bring a set of four or more below four.
// A re-keyed authority counts as one removed (its old key stops voting).
function checkAuthorityChange(ctx: TxContext): void {
  const before = ctx.authorities.members.map((m) => toHex(m.signKey))
  const after = new Set(authoritySet(ctx.state).members.map((m) => toHex(m.signKey)))
  const removed = before.filter((k) => !after.has(k)).length
  if (after.size === 0) throw new TxError('TX_INVALID', 'the change would leave no authority')
  if (removed * 3 > before.length) throw new TxError('TX_INVALID', `the change would remove more than a third of the ${before.length} authorities at once`)
  if (before.length >= 4 && after.size < 4) throw new TxError('TX_INVALID', 'the change would bring the authority set below four')
}

function makeChange(ctx: TxContext, a: OrgAction): void {
  const s = ctx.state
  checkAction(s, a)
  switch (a.kind) {
    case 'admit':
      putOrg(s, a.org)
      break
    case 'remove':
      deleteOrg(s, a.id)
      break
    case 'rekey': {
      const o = getOrg(s, a.id) as OrgRecord
      putOrg(s, { ...o, signKey: a.signKey, encKey: a.encKey })
      break
    }
    case 'params':
      putParams(s, newParams(s, a.params))
      return
  }
  checkAuthorityChange(ctx)
}

/** Registry changes being voted on: proposal id, action and voters so far. */
export function listProposals(s: StateMap): { proposal: Uint8Array; action: OrgAction; voters: string[] }[] {
  const out: { proposal: Uint8Array; action: OrgAction; voters: string[] }[] = []
  for (const [k, v] of s) {
    if (!k.startsWith('p/')) continue
    const a = asArray(decodeCanonical(v), 'proposal', 2)
    out.push({ proposal: fromHex(k.slice(2)), action: actionFromWire(a[0]), voters: asArray(a[1], 'proposal voters').map((x) => asString(x, 'voter', 63)) })
  }
  return out
}

/** `org`: an authority's vote for a change to the organization registry or the chain parameters. */
export const orgTx: TxType<OrgAction> = {
  name: 'org',
  decode: actionFromWire,
  encode: actionToWire,
  toJSON(a) {
    switch (a.kind) {
      case 'admit':
        return { action: 'admit', org: orgToJSON(a.org), proposal: toHex(proposalId(a)) }
      case 'remove':
        return { action: 'remove', id: a.id, proposal: toHex(proposalId(a)) }
      case 'rekey':
        return { action: 'rekey', id: a.id, signKey: toHex(a.signKey), encKey: toHex(a.encKey), proposal: toHex(proposalId(a)) }
      case 'params':
        return { action: 'params', params: Object.fromEntries(paramChanges(a.params)), proposal: toHex(proposalId(a)) }
    }
  },
  apply(ctx, a) {
    // Votes count for the authority set in force for this block: a change
    // made earlier in the same block does not alter who votes until the next height.
    const voter = ctx.authorities.members.find((m) => equalBytes(m.signKey, ctx.sender))
    if (voter === undefined) throw new TxError('TX_UNAUTHORIZED', 'only an authority may vote on the organization registry and the chain parameters')
    checkAction(ctx.state, a)
    const pid = proposalId(a)
    const key = PROPOSAL_KEY(pid)
    const current = new Set(ctx.authorities.members.map((m) => m.id))
    const voters = loadVoters(ctx.state, key).filter((v) => current.has(v))
    if (voters.includes(voter.id)) throw new TxError('TX_INVALID', `${voter.id} already voted for this change`)
    voters.push(voter.id)
    voters.sort()
    if (voters.length >= ctx.authorities.quorum) {
      ctx.state.delete(key)
      makeChange(ctx, a)
    } else {
      ctx.state.set(key, encodeTrusted([actionToWire(a), voters]))
    }
  },
}
