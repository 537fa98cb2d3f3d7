/**
 * Splits `bytes` into consecutive views at the given cut points (taken
 * modulo length + 1, sorted, deduplicated: any list of numbers is a valid
 * split, for property tests), so every way bytes can arrive in pieces can
 * be tried.
 */
export function splitAt(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  const out: Uint8Array[] = []
  let prev = 0
  for (const p of [...points, bytes.length]) {
    out.push(bytes.subarray(prev, p))
    prev = p
  }
  return out
}
