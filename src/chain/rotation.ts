import { equalBytes } from '../util/index.js'
import { asArray, asBool, asU64Number, decodeCanonical, encodeTrusted, u64 } from './codec.js'
import { authoritySet, type OrgRecord } from './orgs.js'
import type { StateMap, StateOverlay } from './state.js'

/**
 * Proposer rotation with the missed-turn rule. The order for height h is a
 * function of the state after h-1: authorities not jailed come first, the one
 * whose last turn is oldest leading; jailed authorities come last. Round r of
 * height h is proposed by order[r mod n].
 *
 * Applying block h, proposed by P at position k of the order: the k
 * authorities before P missed their turn and are jailed; P's last turn
 * becomes h. An authority whose precommit appears in a block's last-commit
 * certificate is released. So a dead authority costs one timeout, then waits
 * at the back until it votes again.
 */

const ROT_KEY = (id: string): string => `r/${id}`

interface RotationRecord {
  readonly lastTurn: number
  readonly jailed: boolean
}

function readRecord(s: StateMap | StateOverlay, id: string): RotationRecord {
  const b = s.get(ROT_KEY(id))
  if (b === undefined) return { lastTurn: 0, jailed: false }
  const a = asArray(decodeCanonical(b), 'rotation', 2)
  return { lastTurn: asU64Number(a[0], 'rotation.lastTurn'), jailed: asBool(a[1], 'rotation.jailed') }
}

function writeRecord(s: StateOverlay, id: string, r: RotationRecord): void {
  s.set(ROT_KEY(id), encodeTrusted([u64(r.lastTurn), r.jailed]))
}

/** The proposer order for the height after the state `s`. */
export function proposerOrder(s: StateMap | StateOverlay): OrgRecord[] {
  const members = authoritySet(s).members
  const recs = new Map(members.map((m) => [m.id, readRecord(s, m.id)]))
  return [...members].sort((a, b) => {
    const ra = recs.get(a.id) as RotationRecord
    const rb = recs.get(b.id) as RotationRecord
    if (ra.jailed !== rb.jailed) return ra.jailed ? 1 : -1
    if (ra.lastTurn !== rb.lastTurn) return ra.lastTurn - rb.lastTurn
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
  })
}

/** The proposer of round `round` at the height after state `s`. */
export function proposerFor(s: StateMap | StateOverlay, round: number): OrgRecord {
  const order = proposerOrder(s)
  return order[round % order.length] as OrgRecord
}

/** True when the authority `id` is jailed for missed turns. */
export function isJailed(s: StateMap | StateOverlay, id: string): boolean {
  return readRecord(s, id).jailed
}

/**
 * Rotation bookkeeping at the start of block `height`: release authorities
 * seen voting in the last commit, then jail those that let their turn pass
 * before `proposer`, and record the proposer's turn.
 */
export function updateRotation(
  s: StateOverlay,
  order: readonly OrgRecord[],
  height: number,
  proposer: Uint8Array,
  lastCommitSigners: readonly Uint8Array[],
): void {
  for (const m of order) {
    if (!lastCommitSigners.some((k) => equalBytes(k, m.signKey))) continue
    const r = readRecord(s, m.id)
    if (r.jailed) writeRecord(s, m.id, { lastTurn: r.lastTurn, jailed: false })
  }
  const k = order.findIndex((m) => equalBytes(m.signKey, proposer))
  if (k < 0) return
  for (let i = 0; i < k; i++) {
    const m = order[i] as OrgRecord
    const r = readRecord(s, m.id)
    if (!r.jailed) writeRecord(s, m.id, { lastTurn: r.lastTurn, jailed: true })
  }
  writeRecord(s, (order[k] as OrgRecord).id, { lastTurn: height, jailed: false })
}
