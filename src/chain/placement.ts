import { DOMAIN, taggedHash } from '../crypto/index.js'
import { assertBytes, utf8 } from '../util/index.js'

/**
 * Where a study's chunks live: rendezvous (highest random weight) hashing,
 * Thaler and Ravishankar 1998. Every organization's weight for a study is
 * taggedHash(PLACEMENT, studyId || utf8(orgId)); the custodian comes first (while admitted), then
 * the other admitted organizations by descending weight (ties cannot
 * happen: ids differ). The first `k` of this order hold the study; the rest
 * are the order in which others take over when holders fail. Every node
 * computes the same order from the ledger, and admitting or removing an
 * organization moves only the studies whose top k it enters or leaves.
 */
export function placementOrder(studyId: Uint8Array, custodian: string, orgIds: readonly string[]): string[] {
  assertBytes(studyId, 16, 'studyId')
  const weighted = orgIds
    .filter((id) => id !== custodian)
    .map((id) => ({ id, w: Buffer.from(taggedHash(DOMAIN.PLACEMENT, studyId, utf8(id))) }))
    .sort((a, b) => Buffer.compare(b.w, a.w))
  // A custodian that left the registry holds nothing any more.
  return [...(orgIds.includes(custodian) ? [custodian] : []), ...weighted.map((x) => x.id)]
}

/** The k organizations that hold a study (fewer when fewer are admitted). */
export function holdersOf(studyId: Uint8Array, custodian: string, orgIds: readonly string[], k: number): string[] {
  return placementOrder(studyId, custodian, orgIds).slice(0, Math.max(1, k))
}
