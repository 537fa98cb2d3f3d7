import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto'
import type { RegisterStudyPayload } from '../chain/index.js'
import { deriveStudyOwner, sha256, wrapKey, type EnvelopeRecipient } from '../crypto/index.js'
import { asBuffer, assertBytes, concatBytes, equalBytes, fromHex, utf8 } from '../util/index.js'
import { StudyError, isStudyError } from './errors.js'
import { TAG, firstString, type DicomInstance } from './dataset.js'
import { readDicom, readStudyInstanceUid } from './dicom-file.js'
import { DicomEncoder } from './dicom-write.js'
import { StudyDeidentifier, type InstanceIdentityRecord, type StudyIdentityRecord } from './deid.js'
import { instanceDigestOfBytes, studyDigest } from './pixel.js'
import { CHUNK_TAG_BYTES, contentRoot, decryptChunk, encryptChunks } from './pack.js'

/*
 * Pack format, version 1 ("RCPK1"): the plaintext that encryptChunks cuts into
 * chunks. All integers are u32 big-endian.
 *
 *   magic    'RCPK1' (5 ASCII bytes)
 *   frame*   u32 length || DICOM Part 10 bytes (PS3.10 7) of one de-identified instance
 *   manifest u32 length || JSON (UTF-8, PackManifest) || u32 length (the same value again)
 *
 * The trailing length lets a reader holding the whole pack find the manifest
 * from the end; a streaming reader knows the plaintext length (payload size
 * minus one GCM tag per chunk) and recognises the manifest as the frame that
 * ends exactly 4 bytes before the end. Manifest offsets point at the first
 * Part 10 byte of a frame (after its length prefix), from the start of the pack.
 */

/** Magic bytes opening every pack. */
export const PACK_MAGIC = 'RCPK1'
/** Version of the pack manifest and of chunk encryption used for a study's first version. */
export const PACK_VERSION = 1
/** AAD prefix of the demographics ciphertext, followed by the 16-byte study id. */
export const DEMOGRAPHICS_AAD_TAG = 'radchain/demographics/v1'
/** Envelope context prefix of the study key, followed by the 16-byte study id. */
export const STUDY_KEY_CONTEXT_TAG = 'radchain/study-key/v1'
/** HKDF-SHA256 info of the chunk data key. */
export const STUDY_DATA_KEY_INFO = 'radchain/study-data-key/v1'
/** HKDF-SHA256 info of the demographics key. */
export const STUDY_DEMOGRAPHICS_KEY_INFO = 'radchain/study-demographics-key/v1'
/** Largest file packageStudy reads ahead of the one it is packing (16 MiB). */
export const READ_AHEAD_MAX_BYTES = 16 * 1024 * 1024
/** Chunk puts packageStudy lets run while it makes the next chunks. */
export const STORE_PUTS_IN_FLIGHT = 2
/** Bound on the manifest frame a reader accepts (16 MiB). */
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024

const MAGIC = utf8(PACK_MAGIC)
const GCM_NONCE_BYTES = 12
const GCM_TAG_BYTES = 16

/** One instance's entry in the pack manifest. */
export interface PackManifestInstance {
  /** SOP Instance UID after de-identification. */
  sopInstanceUid: string
  /** Offset of the first Part 10 byte in the pack. */
  offset: number
  /** Length of the Part 10 bytes. */
  length: number
  /** Pixel digest, hex (see pixelDigest). */
  pixelDigest: string
  /** Transfer syntax the pixel digest was computed in. */
  transferSyntax: string
}

/** The manifest frame closing a pack. */
export interface PackManifest {
  version: 1
  instances: PackManifestInstance[]
  /** studyDigest over the instances, hex. */
  studyDigest: string
}

/** The demographics record of a study, encrypted apart from the pack. */
export interface DemographicsRecord {
  study: StudyIdentityRecord
  instances: InstanceIdentityRecord[]
}

/** Where encrypted chunks go (ChunkStore satisfies it); `id` is always chunkId(bytes), computed by the packer. */
export interface ChunkSink {
  put(id: Uint8Array, bytes: Uint8Array): Promise<void>
}

/** Options of {@link packageStudy}. */
export interface PackageStudyOptions {
  /** Plaintext bytes per chunk (see encryptChunks). */
  chunkSize: number
  /** Organization id of the custodian (the sender of the registration). */
  custodianId: string
  /** Custodian's envelope public keys. */
  custodian: EnvelopeRecipient
  /**
   * The patient owning the study (their public key): the study's own owner
   * key for the ledger is derived from it (deriveStudyOwner), and the study
   * key is wrapped to its envelope keys.
   */
  owner?: { sign: Uint8Array; x25519: Uint8Array; mlkem: Uint8Array }
  store: ChunkSink
  /** Called after each instance: instances packed and pack bytes produced so far. */
  onProgress?: (p: { files: number; bytes: number }) => void
}

/** Result of {@link packageStudy}. */
export interface PackagedStudy {
  payload: RegisterStudyPayload
  /** The study key wrapped to the custodian and to the owner (null without one); the payload holds their sha256. */
  envelopes: { custodian: Uint8Array; owner: Uint8Array | null }
  /** Demographics record, nonce(12) || AES-256-GCM ciphertext || tag(16); and how its key is found. */
  demographics: { ciphertext: Uint8Array; envelopeKeyNote: string }
  /** Chunk ids in order. */
  chunkIds: Uint8Array[]
}

/** The keys derived from a study key. */
export interface StudyKeys {
  dataKey: Uint8Array
  demographicsKey: Uint8Array
}

function u32(n: number): Uint8Array {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n)
  return b
}

/** Envelope context of a study key: utf8(STUDY_KEY_CONTEXT_TAG) || studyId. */
export function studyKeyContext(studyId: Uint8Array): Uint8Array {
  assertBytes(studyId, 16, 'studyId')
  return concatBytes(utf8(STUDY_KEY_CONTEXT_TAG), studyId)
}

/**
 * Data key and demographics key of a study: HKDF-SHA256 (RFC 5869) with
 * ikm = study key, salt = studyId, info = STUDY_DATA_KEY_INFO or
 * STUDY_DEMOGRAPHICS_KEY_INFO, 32 bytes each.
 */
export function deriveStudyKeys(studyKey: Uint8Array, studyId: Uint8Array): StudyKeys {
  assertBytes(studyKey, 32, 'study key')
  assertBytes(studyId, 16, 'studyId')
  const derive = (info: string): Uint8Array => new Uint8Array(hkdfSync('sha256', studyKey, studyId, utf8(info), 32))
  return { dataKey: derive(STUDY_DATA_KEY_INFO), demographicsKey: derive(STUDY_DEMOGRAPHICS_KEY_INFO) }
}

function demographicsAad(studyId: Uint8Array): Uint8Array {
  return concatBytes(utf8(DEMOGRAPHICS_AAD_TAG), studyId)
}

/** Decrypts a demographics ciphertext made by packageStudy (AES-256-GCM, NIST SP 800-38D). */
export function decryptDemographics(ciphertext: Uint8Array, studyKey: Uint8Array, studyId: Uint8Array): DemographicsRecord {
  assertBytes(ciphertext, undefined, 'ciphertext')
  if (ciphertext.length < GCM_NONCE_BYTES + GCM_TAG_BYTES) throw new StudyError('DICOM_RECORD_MISMATCH', 'demographics ciphertext is too short')
  const { dataKey, demographicsKey } = deriveStudyKeys(studyKey, studyId)
  dataKey.fill(0)
  const ct = asBuffer(ciphertext)
  try {
    const d = createDecipheriv('aes-256-gcm', demographicsKey, ct.subarray(0, GCM_NONCE_BYTES), { authTagLength: GCM_TAG_BYTES })
    d.setAAD(demographicsAad(studyId))
    d.setAuthTag(ct.subarray(ct.length - GCM_TAG_BYTES))
    const plain = Buffer.concat([d.update(ct.subarray(GCM_NONCE_BYTES, ct.length - GCM_TAG_BYTES)), d.final()])
    return JSON.parse(plain.toString('utf8')) as DemographicsRecord
  } catch (err) {
    throw new StudyError('DICOM_RECORD_MISMATCH', 'demographics do not decrypt with this key and study', { cause: err })
  } finally {
    demographicsKey.fill(0)
  }
}

function encryptDemographics(record: DemographicsRecord, key: Uint8Array, studyId: Uint8Array): Uint8Array {
  const nonce = randomBytes(GCM_NONCE_BYTES)
  const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: GCM_TAG_BYTES })
  c.setAAD(demographicsAad(studyId))
  const body = Buffer.concat([c.update(JSON.stringify(record), 'utf8'), c.final()])
  return new Uint8Array(Buffer.concat([nonce, body, c.getAuthTag()]))
}

/** Checks the files share one Study Instance UID, reading as little of each as it can (see readStudyInstanceUid). */
async function checkOneStudy(files: readonly string[]): Promise<void> {
  let study: string | undefined
  for (const path of files) {
    const uid = await readStudyInstanceUid(path)
    if (study !== undefined && uid !== study) {
      throw new StudyError('DICOM_STUDY_MISMATCH', 'files belong to more than one study; package each study separately', { path })
    }
    study = uid
  }
}

/**
 * De-identifies one study (PS3.15 E.1, see StudyDeidentifier), writes it as a
 * pack (format above) and encrypts the pack into chunks (encryptChunks,
 * version 1) that go into `store`, one instance in memory at a time (plus the
 * next file read ahead when it is at most READ_AHEAD_MAX_BYTES, and up to
 * STORE_PUTS_IN_FLIGHT chunks being stored while the next is made). A random
 * 32-byte study key is wrapped (wrapKey, context studyKeyContext) to the
 * custodian and the owner; the data key and demographics key are derived from
 * it (deriveStudyKeys). Returns the ledger payload, the envelopes, the
 * encrypted demographics record and the chunk ids. Throws StudyError
 * DICOM_STUDY_MISMATCH, before storing anything, when the files hold more
 * than one study.
 *
 * `files` may also be an async iterable of paths, packed as they come (the
 * DICOMweb spool feeds a study's instances while they are still arriving):
 * then an instance of another study than the first throws
 * DICOM_STUDY_MISMATCH when it comes, and no file at all throws TypeError at
 * the end; what was stored before is the caller's to take back, as after any
 * failure.
 */
export async function packageStudy(files: readonly string[] | AsyncIterable<string>, opts: PackageStudyOptions): Promise<PackagedStudy> {
  const listed = Array.isArray(files) ? (files as readonly string[]) : undefined
  if (listed !== undefined && listed.length === 0) throw new TypeError('packageStudy needs at least one file')
  if (opts.owner !== undefined) assertBytes(opts.owner.sign, 32, 'owner key')
  if (listed !== undefined) await checkOneStudy(listed)

  const studyId = new Uint8Array(randomBytes(16))
  // The owner key on the ledger is this study's own: nothing in it links the patient's studies.
  const ownerKey = opts.owner === undefined ? null : deriveStudyOwner(opts.owner, studyId)
  const studyKey = new Uint8Array(randomBytes(32))
  const { dataKey, demographicsKey } = deriveStudyKeys(studyKey, studyId)
  try {
    const context = studyKeyContext(studyId)
    const custodianEnvelope = wrapKey(studyKey, opts.custodian, context)
    const ownerEnvelope = opts.owner === undefined ? null : wrapKey(studyKey, opts.owner, context)

    const deid = new StudyDeidentifier()
    const encoder = new DicomEncoder()
    const records: InstanceIdentityRecord[] = []
    const manifest: PackManifest = { version: 1, instances: [], studyDigest: '' }
    async function* pack(): AsyncGenerator<Uint8Array> {
      let offset = 0
      const emit = (b: Uint8Array): Uint8Array => {
        offset += b.length
        return b
      }
      yield emit(MAGIC)
      let study: string | undefined
      for await (const { path, inst } of readInstances(files)) {
        // A listed input was checked before anything was stored; a streamed one is checked as it comes.
        if (listed === undefined) {
          const uid = firstString(inst.dataset, TAG.StudyInstanceUID) ?? ''
          if (study !== undefined && uid !== study)
            throw new StudyError('DICOM_STUDY_MISMATCH', 'files belong to more than one study; package each study separately', { path })
          study = uid
        }
        const d = deid.deidentify(inst)
        // The Part 10 bytes in pieces (the pixels not copied); encryptChunks copies each into its chunk.
        const parts = encoder.encode(d.instance)
        const length = parts.reduce((n, p) => n + p.length, 0)
        if (length > 0xffffffff) throw new StudyError('DICOM_TOO_LARGE', 'instance too large for a pack frame', { path })
        records.push(d.record)
        yield emit(u32(length))
        manifest.instances.push({
          sopInstanceUid: d.record.sopInstanceUid,
          offset,
          length,
          pixelDigest: d.pixelDigest,
          transferSyntax: d.pixel.transferSyntax,
        })
        for (const part of parts) yield emit(part)
        opts.onProgress?.({ files: records.length, bytes: offset })
      }
      if (records.length === 0) throw new TypeError('packageStudy needs at least one file')
      manifest.studyDigest = studyDigest(manifest.instances.map((i) => ({ sopInstanceUid: i.sopInstanceUid, digest: i.pixelDigest })))
      const json = utf8(JSON.stringify(manifest))
      yield emit(u32(json.length))
      yield emit(json)
      yield emit(u32(json.length))
    }

    const chunkIds: Uint8Array[] = []
    let size = 0
    // Stores run while the next chunk is made (a put mostly waits on fsync),
    // at most STORE_PUTS_IN_FLIGHT at a time; every put has settled before
    // this function returns or throws.
    const inFlight = new Set<Promise<void>>()
    let failed: { err: unknown } | undefined
    try {
      for await (const c of encryptChunks(pack(), { dataKey, studyId, version: PACK_VERSION, chunkSize: opts.chunkSize })) {
        if (failed !== undefined) break
        const put: Promise<void> = opts.store.put(c.id, c.ciphertext).then(
          () => {
            inFlight.delete(put)
          },
          (err: unknown) => {
            inFlight.delete(put)
            failed ??= { err }
          },
        )
        inFlight.add(put)
        chunkIds.push(c.id)
        size += c.ciphertext.length
        if (inFlight.size >= STORE_PUTS_IN_FLIGHT) await Promise.race(inFlight)
        if (failed !== undefined) break
      }
    } finally {
      await Promise.all(inFlight)
    }
    if (failed !== undefined) throw failed.err

    const demographics: DemographicsRecord = { study: deid.studyRecord(), instances: records }
    const demographicsCiphertext = encryptDemographics(demographics, demographicsKey, studyId)
    const payload: RegisterStudyPayload = {
      studyId,
      custodian: opts.custodianId,
      owner: ownerKey?.owner ?? null,
      contentRoot: contentRoot(chunkIds),
      size,
      chunkCount: chunkIds.length,
      chunkSize: opts.chunkSize,
      studyDigest: fromHex(manifest.studyDigest),
      custodianEnvelope: sha256(custodianEnvelope),
      ownerEnvelope: ownerEnvelope === null ? null : sha256(ownerEnvelope),
      demographics: sha256(demographicsCiphertext),
      ownerEphemeral: ownerKey?.ephemeral ?? null,
    }
    return {
      payload,
      envelopes: { custodian: custodianEnvelope, owner: ownerEnvelope },
      demographics: {
        ciphertext: demographicsCiphertext,
        envelopeKeyNote: `HKDF-SHA256(study key from the custodian or owner envelope, salt = studyId, info = '${STUDY_DEMOGRAPHICS_KEY_INFO}'); AES-256-GCM nonce(12) || ciphertext || tag(16), AAD = '${DEMOGRAPHICS_AAD_TAG}' || studyId`,
      },
      chunkIds,
    }
  } finally {
    studyKey.fill(0)
    dataKey.fill(0)
    demographicsKey.fill(0)
  }
}

/**
 * The instances of `files` in order. From a list, the next file is read
 * while this one is de-identified, written and stored, when it is at most
 * READ_AHEAD_MAX_BYTES (so memory stays bounded by one large file); a bigger
 * one is read at its turn. From a stream, each as it comes.
 */
async function* readInstances(files: readonly string[] | AsyncIterable<string>): AsyncGenerator<{ path: string; inst: DicomInstance }> {
  if (!Array.isArray(files)) {
    for await (const path of files as AsyncIterable<string>) yield { path, inst: await readDicom(path) }
    return
  }
  const list = files as readonly string[]
  const readAhead = (i: number): Promise<DicomInstance | undefined> | undefined => {
    const p = list[i]
    if (p === undefined) return undefined
    const r = readDicom(p, { maxBytes: READ_AHEAD_MAX_BYTES }).catch((err: unknown) => {
      if (isStudyError(err, 'DICOM_TOO_LARGE')) return undefined
      throw err
    })
    // Awaited at its turn; this keeps a failure from being unhandled if packing stops first.
    r.catch(() => {})
    return r
  }
  let next = readAhead(0)
  for (const [i, path] of list.entries()) {
    const inst = (await next) ?? (await readDicom(path))
    next = readAhead(i + 1)
    yield { path, inst }
  }
}

function badPack(msg: string, cause?: unknown): StudyError {
  return new StudyError('DICOM_UNREADABLE', `pack: ${msg}`, { cause })
}

function parseManifest(json: Uint8Array): PackManifest {
  let m: unknown
  try {
    m = JSON.parse(Buffer.from(json).toString('utf8'))
  } catch (err) {
    throw badPack('manifest is not JSON', err)
  }
  const man = m as PackManifest
  if (man === null || typeof man !== 'object' || man.version !== 1 || !Array.isArray(man.instances) || typeof man.studyDigest !== 'string') {
    throw badPack('manifest has the wrong shape')
  }
  const entryOk = (e: PackManifestInstance | null): boolean =>
    e !== null &&
    typeof e === 'object' &&
    typeof e.sopInstanceUid === 'string' &&
    Number.isSafeInteger(e.offset) &&
    Number.isSafeInteger(e.length) &&
    typeof e.pixelDigest === 'string' &&
    typeof e.transferSyntax === 'string'
  if (!man.instances.every(entryOk)) throw badPack('manifest has an instance entry of the wrong shape')
  return man
}

/**
 * Parses a whole pack held in memory (tests, small studies): checks the magic,
 * the frames and that the manifest offsets and lengths match them.
 */
export function readPack(plain: Uint8Array): { manifest: PackManifest; instances: Uint8Array[] } {
  const b = asBuffer(plain)
  if (b.length < MAGIC.length + 8 || !equalBytes(b.subarray(0, MAGIC.length), MAGIC)) throw badPack('bad magic or too short')
  const mlen = b.readUInt32BE(b.length - 4)
  if (mlen > MAX_MANIFEST_BYTES || mlen + 8 + MAGIC.length > b.length) throw badPack('bad manifest length')
  const mstart = b.length - 4 - mlen
  if (b.readUInt32BE(mstart - 4) !== mlen) throw badPack('manifest lengths disagree')
  const manifest = parseManifest(b.subarray(mstart, b.length - 4))
  const instances: Uint8Array[] = []
  let pos = MAGIC.length
  for (const e of manifest.instances) {
    if (pos + 4 > mstart - 4) throw badPack('frame runs into the manifest')
    const len = b.readUInt32BE(pos)
    pos += 4
    if (e.offset !== pos || e.length !== len || pos + len > mstart - 4) throw badPack('manifest does not match the frames')
    instances.push(new Uint8Array(b.subarray(pos, pos + len)))
    pos += len
  }
  if (pos !== mstart - 4) throw badPack('bytes between the last frame and the manifest')
  return { manifest, instances }
}

/** An encrypted chunk and the id (its SHA-256) the caller has checked it against. */
export interface VerifiedChunk {
  readonly bytes: Uint8Array
  readonly id: Uint8Array
}

/**
 * Streams a registered study back: fetches chunk `i` from `chunks`, decrypts
 * it with the data key derived from `studyKey`, and yields the Part 10 bytes
 * of each instance (memory: one instance plus one chunk). At the end it checks
 * the content root, each instance's pixel digest and the study digest against
 * the manifest and the payload; a mismatch throws StudyError DICOM_UNREADABLE
 * (after the instances were yielded: callers must not commit before the end).
 * A chunk given as a {@link VerifiedChunk} is not hashed again: its id is the
 * one its caller checked it against.
 */
export async function* unpackStudy(
  chunks: (index: number) => Promise<Uint8Array | VerifiedChunk>,
  payload: RegisterStudyPayload,
  key: Uint8Array | { readonly dataKey: Uint8Array },
): AsyncGenerator<Uint8Array, PackManifest, undefined> {
  // The study key (custodian, owner, full-scope lease), or the data key alone (images-scope lease).
  let dataKey: Uint8Array
  if (key instanceof Uint8Array) {
    const k = deriveStudyKeys(key, payload.studyId)
    k.demographicsKey.fill(0)
    dataKey = k.dataKey
  } else {
    assertBytes(key.dataKey, 32, 'data key')
    dataKey = key.dataKey.slice()
  }
  const total = payload.size - CHUNK_TAG_BYTES * payload.chunkCount
  if (payload.chunkCount < 1 || total < MAGIC.length + 8) throw badPack('payload sizes cannot hold a pack')
  const ids: Uint8Array[] = []
  let next = 0
  // Decrypted chunks not yet taken, in order; `have` bytes in all. An instance within one chunk is a
  // view of it; one across chunks is copied once into its own buffer.
  const pieces: Buffer[] = []
  let have = 0
  let consumed = 0 // pack offset of the first byte not taken
  const need = async (n: number): Promise<void> => {
    while (have < n) {
      if (next >= payload.chunkCount) throw badPack('truncated')
      const got = await chunks(next)
      const ct = got instanceof Uint8Array ? got : got.bytes
      ids.push(got instanceof Uint8Array ? sha256(ct) : got.id)
      const plain = decryptChunk(ct, {
        dataKey,
        studyId: payload.studyId,
        version: PACK_VERSION,
        index: next,
        isLast: next === payload.chunkCount - 1,
        maxChunkSize: payload.chunkSize,
      })
      next++
      if (plain.length > 0) {
        pieces.push(asBuffer(plain))
        have += plain.length
      }
    }
  }
  const take = async (n: number): Promise<Buffer> => {
    await need(n)
    consumed += n
    have -= n
    const first = pieces[0]
    if (first === undefined || n === 0) return Buffer.alloc(0)
    if (first.length >= n) {
      if (first.length === n) pieces.shift()
      else pieces[0] = first.subarray(n)
      return first.subarray(0, n)
    }
    const out = Buffer.allocUnsafeSlow(n)
    for (let off = 0; off < n;) {
      const p = pieces[0] as Buffer
      const k = Math.min(p.length, n - off)
      p.copy(out, off, 0, k)
      off += k
      if (k === p.length) pieces.shift()
      else pieces[0] = p.subarray(k)
    }
    return out
  }
  try {
    if (!equalBytes(await take(MAGIC.length), MAGIC)) throw badPack('bad magic')
    const digests: { sopInstanceUid: string; digest: string; offset: number; length: number }[] = []
    for (;;) {
      const len = (await take(4)).readUInt32BE(0)
      const offset = consumed
      if (offset + len + 4 === total) {
        if (len > MAX_MANIFEST_BYTES) throw badPack('manifest too large')
        const manifest = parseManifest(await take(len))
        if ((await take(4)).readUInt32BE(0) !== len) throw badPack('manifest lengths disagree')
        if (!equalBytes(contentRoot(ids), payload.contentRoot)) throw badPack('chunks do not match the content root')
        const ok =
          manifest.instances.length === digests.length &&
          manifest.instances.every((e, i) => {
            const d = digests[i]
            return d !== undefined && e.sopInstanceUid === d.sopInstanceUid && e.pixelDigest === d.digest && e.offset === d.offset && e.length === d.length
          })
        if (!ok) throw badPack('instances do not match the manifest')
        const sd = studyDigest(digests)
        if (sd !== manifest.studyDigest || !equalBytes(fromHex(sd), payload.studyDigest)) throw badPack('study digest does not match')
        return manifest
      }
      if (offset + len + 4 > total) throw badPack('frame runs past the end')
      const bytes = await take(len)
      const d = instanceDigestOfBytes(bytes)
      digests.push({ sopInstanceUid: d.sopInstanceUid, digest: d.digest, offset, length: len })
      yield bytes
    }
  } finally {
    dataKey.fill(0)
  }
}

/** One instance of a registered study read on its own (see {@link openPack}). */
export interface PackReader {
  readonly manifest: PackManifest
  /** The Part 10 bytes of a manifest entry, checked against its pixel digest and SOP Instance UID. */
  instance(entry: PackManifestInstance): Promise<Uint8Array>
  /** Forgets the data key and the chunks read. */
  close(): void
}

/**
 * Random access into a registered study: only the chunks an instance lies in
 * are decrypted (a viewer's one frame need not wait for the study before
 * it). `ids` is the study's chunk list, checked once against the content
 * root; each chunk read is checked against its id, and each instance
 * against its manifest entry (pixel digest, SOP Instance UID). The manifest
 * is found from the pack's end (its trailing length). `key`: the study key,
 * or the data key alone (an images-scope lease). The last two chunks read are
 * kept, so neighbouring instances share them.
 */
export async function openPack(
  chunk: (index: number) => Promise<Uint8Array>,
  ids: readonly Uint8Array[],
  payload: RegisterStudyPayload,
  key: Uint8Array | { readonly dataKey: Uint8Array },
): Promise<PackReader> {
  if (ids.length !== payload.chunkCount || !equalBytes(contentRoot(ids), payload.contentRoot)) throw badPack('chunk list does not match the content root')
  let dataKey: Uint8Array
  if (key instanceof Uint8Array) {
    const k = deriveStudyKeys(key, payload.studyId)
    k.demographicsKey.fill(0)
    dataKey = k.dataKey
  } else dataKey = key.dataKey.slice()
  const total = payload.size - CHUNK_TAG_BYTES * payload.chunkCount
  const cs = payload.chunkSize
  if (payload.chunkCount < 1 || total < MAGIC.length + 8 || total > cs * payload.chunkCount) throw badPack('payload sizes cannot hold a pack')
  const recent = new Map<number, Buffer>()
  const plain = async (i: number): Promise<Buffer> => {
    const hit = recent.get(i)
    if (hit !== undefined) return hit
    const p = asBuffer(
      decryptChunk(await chunk(i), {
        dataKey,
        studyId: payload.studyId,
        version: PACK_VERSION,
        index: i,
        isLast: i === payload.chunkCount - 1,
        id: ids[i] as Uint8Array,
        maxChunkSize: cs,
      }),
    )
    recent.set(i, p)
    if (recent.size > 2) recent.delete(recent.keys().next().value as number)
    return p
  }
  const read = async (off: number, len: number): Promise<Buffer> => {
    if (!Number.isSafeInteger(off) || !Number.isSafeInteger(len) || off < 0 || len < 0 || off + len > total) throw badPack('a read past the pack')
    const parts: Buffer[] = []
    for (let i = Math.floor(off / cs); i * cs < off + len; i++) {
      const p = await plain(i)
      parts.push(p.subarray(Math.max(0, off - i * cs), Math.min(p.length, off + len - i * cs)))
    }
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts)
  }
  const mlen = (await read(total - 4, 4)).readUInt32BE(0)
  if (mlen > MAX_MANIFEST_BYTES || mlen + 8 + MAGIC.length > total) throw badPack('bad manifest length')
  const mstart = total - 4 - mlen
  if ((await read(mstart - 4, 4)).readUInt32BE(0) !== mlen) throw badPack('manifest lengths disagree')
  const manifest = parseManifest(await read(mstart, mlen))
  return {
    manifest,
    async instance(e: PackManifestInstance): Promise<Uint8Array> {
      if (e.offset < MAGIC.length + 4 || e.offset + e.length > mstart - 4) throw badPack('a manifest entry outside the frames')
      if ((await read(e.offset - 4, 4)).readUInt32BE(0) !== e.length) throw badPack('a manifest entry does not match its frame')
      const bytes = new Uint8Array(await read(e.offset, e.length))
      const d = instanceDigestOfBytes(bytes)
      if (d.digest !== e.pixelDigest || d.sopInstanceUid !== e.sopInstanceUid) throw badPack('an instance does not match its manifest entry')
      return bytes
    },
    close(): void {
      dataKey.fill(0)
      recent.clear()
    },
  }
}
