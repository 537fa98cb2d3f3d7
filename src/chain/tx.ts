import { DOMAIN, signingBytes, taggedHash, verifyEd25519, type Ed25519Signer } from '../crypto/index.js'
import { toHex } from '../util/index.js'
import { CodecError, asArray, asBytes, asString, asU64Number, decodeCanonical, encodeTrusted, u64 } from './codec.js'
import { TxError } from './errors.js'
import { TX_TYPES } from './tx-types/registry.js'

/** The signed part of a transaction. */
export interface TxBody<P = unknown> {
  readonly chainId: string
  readonly type: string
  /** Ed25519 public key of the signer. */
  readonly sender: Uint8Array
  /** Per-sender sequence number, from 0, for replay protection. */
  readonly nonce: number
  readonly payload: P
}

/**
 * A decoded transaction with its wire bytes. Wire form:
 * `[body: bin, signature: bin]` where body is the canonical encoding of
 * `[chainId, type, sender, nonce (u64), payload]` and the Ed25519 signature
 * covers `TX_SIGN tag || 0x00 || body`. The id is `sha256(TX tag || 0x00 || body)`,
 * so it does not depend on the signature bytes.
 */
export interface Tx<P = unknown> extends TxBody<P> {
  readonly id: Uint8Array
  readonly bytes: Uint8Array
  readonly signature: Uint8Array
}

function encodeBody(b: TxBody): Uint8Array {
  const t = TX_TYPES.get(b.type)
  if (t === undefined) throw new TxError('TX_UNKNOWN_TYPE', `unknown transaction type ${b.type}`)
  return encodeTrusted([b.chainId, b.type, b.sender, u64(b.nonce), t.encode(b.payload)])
}

/** What signs a transaction: an Ed25519 key (an organization's signer, or a study's owner key: StudyOwnerSigner). */
export type TxSigner = Pick<Ed25519Signer, 'publicKey' | 'sign'>

/** Signs a transaction body with `signer` (whose key becomes the sender). */
export function signTx<P>(signer: TxSigner, body: Omit<TxBody<P>, 'sender'>): Tx<P> {
  const full: TxBody<P> = { ...body, sender: signer.publicKey }
  const bodyBytes = encodeBody(full)
  const signature = signer.sign(signingBytes(DOMAIN.TX_SIGN, bodyBytes))
  return { ...full, id: taggedHash(DOMAIN.TX, bodyBytes), signature, bytes: encodeTrusted([bodyBytes, signature]) }
}

/** Decoding options. */
export interface DecodeTxOpts {
  /** Expected chain id (TX_WRONG_CHAIN otherwise). */
  readonly chainId: string
  /** Largest accepted encoding (TX_TOO_LARGE otherwise). */
  readonly maxBytes: number
  /** Verify the signature (default true). */
  readonly verify?: boolean
  /**
   * Skips the signature check when this returns true for the transaction's
   * id and signature (that exact pair was verified before, e.g. in the mempool).
   */
  readonly alreadyVerified?: (id: Uint8Array, signature: Uint8Array) => boolean
}

/**
 * Decodes and checks a transaction's wire bytes: size, canonical encoding,
 * known type, payload shape, chain id and (unless `verify: false`) signature.
 */
export function decodeTx(bytes: Uint8Array, opts: DecodeTxOpts): Tx {
  if (bytes.length > opts.maxBytes)
    throw new TxError('TX_TOO_LARGE', `transaction of ${bytes.length} bytes exceeds the limit of ${opts.maxBytes}`, { penalize: true })
  let tx: Tx
  try {
    const outer = asArray(decodeCanonical(bytes), 'tx', 2)
    const bodyBytes = asBytes(outer[0], 'tx.body')
    const signature = asBytes(outer[1], 'tx.signature', 64)
    const b = asArray(decodeCanonical(bodyBytes), 'tx.body', 5)
    const type = asString(b[1], 'tx.type', 64)
    const t = TX_TYPES.get(type)
    if (t === undefined) throw new TxError('TX_UNKNOWN_TYPE', `unknown transaction type ${JSON.stringify(type)}`, { penalize: true })
    tx = {
      chainId: asString(b[0], 'tx.chainId', 128),
      type,
      sender: asBytes(b[2], 'tx.sender', 32),
      nonce: asU64Number(b[3], 'tx.nonce'),
      payload: t.decode(b[4]),
      id: taggedHash(DOMAIN.TX, bodyBytes),
      bytes,
      signature,
    }
    if (
      opts.verify !== false &&
      opts.alreadyVerified?.(tx.id, tx.signature) !== true &&
      !verifyEd25519(tx.sender, signingBytes(DOMAIN.TX_SIGN, bodyBytes), signature)
    ) {
      throw new TxError('TX_BAD_SIGNATURE', 'transaction signature does not verify', { penalize: true })
    }
  } catch (err) {
    if (err instanceof CodecError) throw new TxError('TX_MALFORMED', `malformed transaction: ${err.message}`, { cause: err, penalize: true })
    throw err
  }
  if (tx.chainId !== opts.chainId)
    throw new TxError('TX_WRONG_CHAIN', `transaction is for chain ${JSON.stringify(tx.chainId)}, not ${JSON.stringify(opts.chainId)}`, { penalize: true })
  return tx
}

/** Verifies a decoded transaction's signature (for transactions decoded with verify: false). */
export function verifyTxSignature(tx: Tx): boolean {
  const outer = decodeCanonical(tx.bytes) as unknown[]
  return verifyEd25519(tx.sender, signingBytes(DOMAIN.TX_SIGN, outer[0] as Uint8Array), tx.signature)
}

/** JSON view of a transaction for the API. */
export function txToJSON(tx: Tx): Record<string, unknown> {
  const t = TX_TYPES.get(tx.type)
  return {
    hash: toHex(tx.id),
    chainId: tx.chainId,
    type: tx.type,
    sender: toHex(tx.sender),
    nonce: tx.nonce,
    payload: t === undefined ? null : t.toJSON(tx.payload),
    size: tx.bytes.length,
  }
}
