import t from 'tap'
import { readFileSync } from 'node:fs'
import { ed25519, x25519 } from '@noble/curves/ed25519.js'
import { bytesToNumberLE } from '@noble/curves/utils.js'
import {
  DOMAIN,
  Ed25519Signer,
  PatientStudyKeys,
  deriveStudyOwner,
  generateOrgKeys,
  isUsableEd25519PublicKey,
  taggedHash,
  verifyEd25519,
  x25519FromPrivate,
} from '../../../src/crypto/index.js'
import { concatBytes, fromHex, toHex } from '../../../src/util/index.js'

const L = ed25519.Point.Fn.ORDER

function randomPatient(): { keys: ReturnType<typeof generateOrgKeys>['keys']; pub: { sign: Uint8Array; x25519: Uint8Array } } {
  const { keys } = generateOrgKeys()
  return { keys, pub: { sign: keys.signer.publicKey, x25519: keys.encryption.publicKey } }
}

function randomStudyId(): Uint8Array {
  return new Uint8Array(ed25519.utils.randomSecretKey().subarray(0, 16))
}

t.test('random patients and studies: the custodian and the patient derive the same key, and the patient signs for it', async (t) => {
  const N = 2000
  let agree = 0
  let verified = 0
  let usable = 0
  let distinct = 0
  const seen = new Set<string>()
  let p = randomPatient()
  let ps = new PatientStudyKeys(p.keys)
  for (let i = 0; i < N; i++) {
    // A new patient every 4 studies: pairs of studies of one patient and of different patients.
    if (i % 4 === 0) {
      p = randomPatient()
      ps = new PatientStudyKeys(p.keys)
    }
    const studyId = randomStudyId()
    const k = deriveStudyOwner(p.pub, studyId)
    if (isUsableEd25519PublicKey(k.owner)) usable++
    const signer = ps.signerFor(studyId, k.owner, k.ephemeral)
    if (signer !== null && toHex(signer.publicKey) === toHex(k.owner)) agree++
    const msg = ed25519.utils.randomSecretKey()
    const sig = signer?.sign(msg) ?? new Uint8Array(64)
    if (verifyEd25519(k.owner, msg, sig)) verified++
    const id = toHex(k.owner)
    if (!seen.has(id) && id !== toHex(p.pub.sign)) distinct++
    seen.add(id)
  }
  t.equal(usable, N, 'every derived owner key is a canonical point of large order')
  t.equal(agree, N, "the patient's derivation finds the custodian's key every time")
  t.equal(verified, N, 'every signature verifies with verifyEd25519 (node:crypto)')
  t.equal(distinct, N, 'no owner key repeats, and none is the patient key itself')
})

t.test('signatures also verify with noble and fail on another message or key', async (t) => {
  const p = randomPatient()
  const studyId = randomStudyId()
  const k = deriveStudyOwner(p.pub, studyId)
  const s = new PatientStudyKeys(p.keys).signerFor(studyId, k.owner, k.ephemeral)
  if (s === null) throw new Error('no signer')
  const msg = new TextEncoder().encode('consent')
  const sig = s.sign(msg)
  t.same(s.sign(msg), sig, 'deterministic (RFC 8032)')
  t.ok(ed25519.verify(sig, msg, k.owner), 'noble agrees')
  t.notOk(verifyEd25519(k.owner, new TextEncoder().encode('consenT'), sig), 'another message fails')
  t.notOk(verifyEd25519(p.pub.sign, msg, sig), "the patient's own key does not verify it")
  const other = deriveStudyOwner(p.pub, studyId)
  t.notOk(verifyEd25519(other.owner, msg, sig), 'nor the key of another registration of the same patient')
  const s2 = new PatientStudyKeys(p.keys).signerFor(studyId, other.owner, other.ephemeral)
  t.not(toHex(s2?.sign(msg) ?? new Uint8Array()), toHex(sig), 'each study key signs with its own nonces')
})

t.test('another patient derives another key and finds nothing', async (t) => {
  const a = randomPatient()
  const b = randomPatient()
  const studyId = randomStudyId()
  const k = deriveStudyOwner(a.pub, studyId)
  const pb = new PatientStudyKeys(b.keys)
  t.equal(pb.signerFor(studyId, k.owner, k.ephemeral), null, "b cannot sign for a's study")
  t.notOk(pb.owns(studyId, k.owner, k.ephemeral))
  t.not(toHex(pb.ownerKey(studyId, k.ephemeral) ?? new Uint8Array()), toHex(k.owner), 'b derives a different key from the same R')
  const pa = new PatientStudyKeys(a.keys)
  t.ok(pa.owns(studyId, k.owner, k.ephemeral))
  t.notOk(pa.owns(randomStudyId(), k.owner, k.ephemeral), 'the key is bound to the study id')
  // A patient with the same Ed25519 key but another X25519 key (h depends on the X25519 secret).
  const mixed = new PatientStudyKeys({ identitySeed: a.keys.identitySeed, encryption: b.keys.encryption })
  t.notOk(mixed.owns(studyId, k.owner, k.ephemeral), 'without the X25519 secret the study is not found')
  // R of low order (a hostile registration): not ours, no throw.
  const lowOrder = new Uint8Array(32)
  t.notOk(pa.owns(studyId, k.owner, lowOrder))
  t.equal(pa.ownerKey(studyId, new Uint8Array(31)), null)
})

t.test('one patient, two studies: the published values share nothing', async (t) => {
  const p = randomPatient()
  const s1 = randomStudyId()
  const s2 = randomStudyId()
  const k1 = deriveStudyOwner(p.pub, s1)
  const k2 = deriveStudyOwner(p.pub, s2)
  t.not(toHex(k1.owner), toHex(k2.owner))
  t.not(toHex(k1.ephemeral), toHex(k2.ephemeral))
  for (const v of [k1.owner, k1.ephemeral, k2.owner, k2.ephemeral])
    for (const secretish of [p.pub.sign, p.pub.x25519]) t.not(toHex(v), toHex(secretish), 'no patient key in what is published')
})

t.test('bad inputs are refused at the boundary', async (t) => {
  const p = randomPatient()
  t.throws(() => deriveStudyOwner({ sign: new Uint8Array(31), x25519: p.pub.x25519 }, randomStudyId()), TypeError)
  t.throws(() => deriveStudyOwner({ sign: p.pub.sign, x25519: new Uint8Array(32) }, randomStudyId()), { name: 'TypeError', message: /low-order/ })
})

const V = JSON.parse(readFileSync(new URL('../../vectors/study-owner.json', import.meta.url), 'utf8')) as {
  cases: Record<
    'ed25519Seed' | 'x25519Private' | 'ephemeralPrivate' | 'studyId' | 'patientEd25519' | 'patientX25519' | 'ephemeral' | 'owner' | 'message' | 'signature',
    string
  >[]
}

t.test('pinned vectors (test/vectors/study-owner.json, never regenerate silently)', async (t) => {
  t.equal(V.cases.length, 3)
  for (const c of V.cases) {
    const seed = fromHex(c.ed25519Seed)
    const enc = x25519FromPrivate(fromHex(c.x25519Private))
    const sign = new Ed25519Signer(seed).publicKey
    t.equal(toHex(sign), c.patientEd25519)
    t.equal(toHex(enc.publicKey), c.patientX25519)
    const studyId = fromHex(c.studyId)
    const k = deriveStudyOwner({ sign, x25519: enc.publicKey }, studyId, () => fromHex(c.ephemeralPrivate))
    t.equal(toHex(k.ephemeral), c.ephemeral, 'R')
    t.equal(toHex(k.owner), c.owner, 'O')
    // The same by hand from the formula, with noble's point arithmetic.
    const tShared = x25519.getSharedSecret(fromHex(c.ephemeralPrivate), enc.publicKey)
    const R = fromHex(c.ephemeral)
    const wide = concatBytes(
      taggedHash(DOMAIN.STUDY_OWNER, new Uint8Array([0]), tShared, R, studyId),
      taggedHash(DOMAIN.STUDY_OWNER, new Uint8Array([1]), tShared, R, studyId),
    )
    const h = bytesToNumberLE(wide) % L
    t.equal(toHex(ed25519.Point.fromBytes(sign).add(ed25519.Point.BASE.multiply(h)).toBytes()), c.owner, 'O = A + h*B by hand')
    const signer = new PatientStudyKeys({ identitySeed: seed, encryption: enc }).signerFor(studyId, fromHex(c.owner), R)
    t.equal(toHex(signer?.sign(fromHex(c.message)) ?? new Uint8Array()), c.signature, 'signature')
    t.ok(verifyEd25519(fromHex(c.owner), fromHex(c.message), fromHex(c.signature)))
  }
})
