import { DOMAIN, taggedHash } from './hash.js'

/**
 * Merkle root over 32-byte leaves, split as in RFC 6962 section 2.1 (left
 * subtree = largest power of two below n), with domain-tagged leaf and node
 * hashes, so no odd-leaf duplication ambiguity arises.
 */
export function merkleRoot(leaves: readonly Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return taggedHash(DOMAIN.MERKLE_LEAF)
  const hashed = leaves.map((l) => taggedHash(DOMAIN.MERKLE_LEAF, l))
  return subtree(hashed, 0, hashed.length)
}

function subtree(h: Uint8Array[], from: number, to: number): Uint8Array {
  const n = to - from
  if (n === 1) return h[from] as Uint8Array
  let k = 1
  while (k * 2 < n) k *= 2
  return taggedHash(DOMAIN.MERKLE_NODE, subtree(h, from, from + k), subtree(h, from + k, to))
}
