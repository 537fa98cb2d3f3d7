import { Ed25519Signer, verifyEd25519 } from '../src/crypto/index.js'

/**
 * One-core Ed25519 verification rate of the consensus verifier (node:crypto
 * with a cached KeyObject), over distinct 200-byte messages. The baseline the
 * node's throughput is compared against.
 */
export function measureVerifyRate(durationMs = 2000): number {
  const { signer } = Ed25519Signer.generate()
  const msgs: Uint8Array[] = []
  const sigs: Uint8Array[] = []
  for (let i = 0; i < 1000; i++) {
    const m = new Uint8Array(200)
    m.fill(i & 0xff)
    m[0] = i >> 8
    msgs.push(m)
    sigs.push(signer.sign(m))
  }
  const pub = signer.publicKey
  for (let i = 0; i < 2000; i++) verifyEd25519(pub, msgs[i % 1000] as Uint8Array, sigs[i % 1000] as Uint8Array)
  let n = 0
  const t0 = performance.now()
  let t = t0
  while (t - t0 < durationMs) {
    for (let i = 0; i < 500; i++, n++) {
      if (!verifyEd25519(pub, msgs[n % 1000] as Uint8Array, sigs[n % 1000] as Uint8Array)) throw new Error('verify failed')
    }
    t = performance.now()
  }
  return n / ((t - t0) / 1000)
}
