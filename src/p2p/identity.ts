import { generateKeyPairFromSeed, publicKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import type { Ed25519PrivateKey, PeerId } from '@libp2p/interface'
import { assertBytes } from '../util/index.js'
import { P2PError } from './errors.js'

/** Length of an organization's raw Ed25519 public key and seed (RFC 8032). */
export const ORG_KEY_BYTES = 32

/**
 * The libp2p private key of an organization: the same Ed25519 key pair as its
 * signing key (RFC 8032 section 5.1.5 from the 32-byte seed), so the peer id
 * proven in the Noise/TLS handshake is the organization's ledger identity.
 */
export async function privateKeyFromSeed(seed: Uint8Array): Promise<Ed25519PrivateKey> {
  assertBytes(seed, ORG_KEY_BYTES, 'identity seed')
  return generateKeyPairFromSeed('Ed25519', seed)
}

/** The peer id of a raw 32-byte Ed25519 public key. */
export function peerIdFromOrgKey(publicKey: Uint8Array): PeerId {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== ORG_KEY_BYTES) {
    throw new P2PError('P2P_INVALID_ARGUMENT', 'an organization key is 32 bytes of Ed25519 public key')
  }
  return peerIdFromPublicKey(publicKeyFromRaw(publicKey))
}

/** The raw 32-byte Ed25519 public key of `peerId`, or undefined for any other kind of peer id. */
export function orgKeyOf(peerId: PeerId): Uint8Array | undefined {
  if (peerId.type !== 'Ed25519') return undefined
  const raw = peerId.publicKey.raw
  return raw.length === ORG_KEY_BYTES ? raw : undefined
}

/** Checks a channel or protocol name component: letters, digits, '.', '_' and '-', 1 to 64 chars. */
export function assertProtocolPart(s: string, what: string): void {
  if (typeof s !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(s)) {
    throw new P2PError('P2P_INVALID_ARGUMENT', `${what} must be 1-64 letters, digits, '.', '_' or '-'`)
  }
}

/** The libp2p protocol id of radchain protocol `name` on network `networkId`: /radchain/<networkId>/<name>/1. */
export function protocolId(networkId: string, name: string): string {
  assertProtocolPart(networkId, 'network id')
  assertProtocolPart(name, 'protocol name')
  return `/radchain/${networkId}/${name}/1`
}
