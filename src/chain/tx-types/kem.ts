import { MLKEM768_PUBLIC_KEY_BYTES } from '../../crypto/index.js'
import { equalBytes } from '../../util/index.js'
import { asArray, asBytes, decodeCanonical, encodeTrusted } from '../codec.js'
import { TxError } from '../errors.js'
import { getOrg, orgBySignKey } from '../orgs.js'
import type { StateMap, StateOverlay } from '../state.js'
import type { TxType } from './types.js'

/**
 * An organization publishes its ML-KEM-768 encapsulation key (FIPS 203),
 * derived from its X25519 key (crypto/mlkem.ts), so that key envelopes can
 * be wrapped to it (a lease grant needs the requester's). The key is
 * recorded with the X25519 key it belongs to: after a re-key it no longer
 * counts until published again. Signed by the organization itself.
 */
export interface KemKeyPayload {
  readonly kemKey: Uint8Array
}

const KEM_KEY = (orgId: string): string => `ok/${orgId}`

/** An organization's envelope keys (X25519 and ML-KEM-768) if it published a key for its current X25519 key. */
export function getEnvelopeKeys(s: StateMap | StateOverlay, orgId: string): { x25519: Uint8Array; mlkem: Uint8Array } | undefined {
  const org = getOrg(s, orgId)
  const b = s.get(KEM_KEY(orgId))
  if (org === undefined || b === undefined) return undefined
  const a = asArray(decodeCanonical(b), 'kem record', 2)
  const enc = asBytes(a[0], 'kem.encKey', 32)
  if (!equalBytes(enc, org.encKey)) return undefined
  return { x25519: org.encKey, mlkem: asBytes(a[1], 'kem.kemKey', MLKEM768_PUBLIC_KEY_BYTES) }
}

/** `org.kem`: an admitted organization publishes its ML-KEM-768 key. */
export const kemKeyTx: TxType<KemKeyPayload> = {
  name: 'org.kem',
  decode(raw) {
    const a = asArray(raw, 'org.kem', 1)
    return { kemKey: asBytes(a[0], 'org.kem.kemKey', MLKEM768_PUBLIC_KEY_BYTES) }
  },
  encode: (p) => [p.kemKey],
  toJSON: (p) => ({ kemKeyBytes: p.kemKey.length }),
  apply(ctx, p) {
    const org = orgBySignKey(ctx.state, ctx.sender)
    if (org === undefined) throw new TxError('TX_UNAUTHORIZED', 'only an admitted organization publishes an envelope key')
    ctx.state.set(KEM_KEY(org.id), encodeTrusted([org.encKey, p.kemKey]))
  },
}
