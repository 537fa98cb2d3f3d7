// Valid values the fuzz tests start from and mutate (not a test file itself).
// Each is built through the project's own encoders (signTx, the chain's
// block builder, packageStudy), so a format that gains a field changes the
// seeds with it; only the payload objects below name fields, and TypeScript
// points here when a payload type changes.
import { mlkemFromX25519Private, sha256, signingBytes, DOMAIN, x25519FromPrivate, type Ed25519Signer } from '../../src/crypto/index.js'
import { TX_TYPES, leaseClaimBytes, signTx, signVote, type Tx } from '../../src/chain/index.js'
import { packageStudy } from '../../src/study/index.js'
import { utf8 } from '../../src/util/index.js'
import { CHAIN_ID, testSigner } from '../unit/chain/fixtures.js'
import { sample } from '../unit/study/helpers.js'

/** Deterministic bytes of length `n` from `label`. */
export function bytesOf(label: string, n: number): Uint8Array {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i += 32) out.set(sha256(utf8(`${label}/${i}`)).subarray(0, Math.min(32, n - i)), i)
  return out
}

/** Envelope keys of a test organization or patient (X25519 and ML-KEM-768, from one X25519 private key). */
export function envelopeKeys(label: string): { x25519: Uint8Array; mlkem: Uint8Array; x25519Priv: Uint8Array; mlkemSecret: Uint8Array } {
  const x = x25519FromPrivate(bytesOf(`x25519/${label}`, 32))
  const m = mlkemFromX25519Private(x.privateKey)
  return { x25519: x.publicKey, mlkem: m.publicKey, x25519Priv: x.privateKey, mlkemSecret: m.secretKey }
}

/** A study.register payload made by packing a real sample study (so it has whatever fields packageStudy fills). */
async function registerPayload(owner: boolean): Promise<unknown> {
  const patient = testSigner('fuzz-patient')
  const packed = await packageStudy([sample('study-77654033/CT2/17106')], {
    chunkSize: 4096,
    custodianId: 'auth-0',
    custodian: envelopeKeys('auth-0'),
    ...(owner ? { owner: { sign: patient.publicKey, ...envelopeKeys('fuzz-patient') } } : {}),
    store: { put: async () => undefined },
  })
  return packed.payload
}

/** One or more valid payloads of every transaction type, by type name. */
export async function payloadSeeds(): Promise<Map<string, unknown[]>> {
  const signer = testSigner('auth-1')
  const studyId = bytesOf('study', 16)
  const leaseId = bytesOf('lease', 32)
  const hash = bytesOf('hash', 32)
  const holder = testSigner('auth-2').publicKey
  const claim = signingBytes(DOMAIN.LEASE_CHUNK_REQUEST, leaseClaimBytes(studyId, 3, leaseId, 1_700_000_000_000, 42, holder))
  const seeds = new Map<string, unknown[]>([
    ['note', [{ text: 'hello' }, { text: '' }]],
    [
      'org',
      [
        {
          kind: 'admit',
          org: { id: 'new-org', name: 'New Org', role: 'member', signKey: bytesOf('sign', 32), encKey: bytesOf('enc', 32), addrs: ['/ip4/127.0.0.1/tcp/1'] },
        },
        { kind: 'remove', id: 'auth-2' },
        { kind: 'rekey', id: 'auth-1', signKey: bytesOf('sign2', 32), encKey: bytesOf('enc2', 32) },
      ],
    ],
    ['evidence', [{ a: signVote(signer, CHAIN_ID, 'prevote', 5, 0, hash), b: signVote(signer, CHAIN_ID, 'prevote', 5, 0, null) }]],
    [
      'study.register',
      [
        await registerPayload(false),
        await registerPayload(true),
        // A new version: the 13th field names the study it extends.
        { ...((await registerPayload(false)) as object), extends: { studyId, contentRoot: hash } },
      ],
    ],
    ['study.erase', [{ studyId }]],
    ['org.kem', [{ kemKey: envelopeKeys('auth-1').mlkem }]],
    [
      'consent.set',
      [
        { studyId, anyOrg: false, orgs: ['auth-1'], purposes: ['research'], scopes: ['images'], maxDurationMs: 3600_000, researchPool: false },
        { studyId, anyOrg: true, orgs: [], purposes: [], scopes: ['images', 'full'], maxDurationMs: 60_000, researchPool: true },
      ],
    ],
    ['lease.request', [{ studyId, scope: 'full', durationMs: 3600_000, purpose: 'second opinion' }]],
    ['lease.approve', [{ leaseId }]],
    ['lease.grant', [{ leaseId, envelope: hash }]],
    ['lease.deny', [{ leaseId, reason: 'no' }]],
    ['lease.revoke', [{ leaseId }]],
    ['access.record', [{ leaseId, what: 'unwrap' }]],
    ['violation.report', [{ requester: 'auth-1', studyId, index: 3, leaseId, time: 1_700_000_000_000, height: 42, holder, signature: signer.sign(claim) }]],
    [
      'access.served',
      [
        {
          leaseId,
          first: 1_700_000_000_000,
          last: 1_700_000_060_000,
          chunks: 3,
          bytes: 3 * 4112,
          envelope: true,
          demographics: false,
          claim: { index: 3, time: 1_700_000_000_000, height: 42, signature: signer.sign(claim) },
        },
      ],
    ],
  ])
  for (const name of TX_TYPES.keys()) if (!seeds.has(name)) throw new Error(`test/fuzz/seeds.ts has no payload of transaction type ${name}`)
  return seeds
}

/** Signed transactions of every type, signed by `signer`. */
export function signedSeeds(seeds: Map<string, unknown[]>, signer: Ed25519Signer = testSigner('auth-0')): Tx[] {
  const out: Tx[] = []
  let nonce = 0
  for (const [type, payloads] of seeds) for (const payload of payloads) out.push(signTx(signer, { chainId: CHAIN_ID, type, nonce: nonce++, payload }))
  return out
}
