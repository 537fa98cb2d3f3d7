import { assertBytes, concatBytes, utf8 } from '../util/index.js'
import { deriveStudyKeys } from './package.js'

/** Envelope context prefix of a lease key, followed by the 32-byte lease id and the scope. */
export const LEASE_KEY_CONTEXT_TAG = 'radchain/lease-key/v1'

/** Envelope context of a lease key: utf8(LEASE_KEY_CONTEXT_TAG) || leaseId || utf8(scope). */
export function leaseKeyContext(leaseId: Uint8Array, scope: 'images' | 'full'): Uint8Array {
  assertBytes(leaseId, 32, 'leaseId')
  return concatBytes(utf8(LEASE_KEY_CONTEXT_TAG), leaseId, utf8(scope))
}

/**
 * The key a lease hands over: for the images scope the data key only (it
 * decrypts the chunks, not the demographics record); for the full scope the
 * study key, from which both keys derive (deriveStudyKeys).
 */
export function leaseKeyFor(studyKey: Uint8Array, studyId: Uint8Array, scope: 'images' | 'full'): Uint8Array {
  if (scope === 'full') return studyKey.slice()
  const k = deriveStudyKeys(studyKey, studyId)
  k.demographicsKey.fill(0)
  return k.dataKey
}
