import { DOMAIN, taggedHash } from '../crypto/index.js'
import { toHex } from '../util/index.js'
import { CodecError, asArray, asBytes, asString, asU32, asU64Number, decodeCanonical, decodeTrusted, encodeTrusted, u64, type Encodable } from './codec.js'
import { BlockError } from './errors.js'
import { decodeTx, txToJSON, type Tx } from './tx.js'

/** Version of the block format. */
export const BLOCK_VERSION = 1

/** A block header. Wire form: a fixed-order array of these fields. */
export interface BlockHeader {
  readonly version: number
  readonly chainId: string
  readonly height: number
  readonly parentHash: Uint8Array
  /** Chain time: ms since the Unix epoch, strictly increasing. */
  readonly time: number
  /** Signing key of the authority that proposed the block (zero for genesis). */
  readonly proposer: Uint8Array
  /** Merkle root over the transaction ids. */
  readonly txRoot: Uint8Array
  /** State root after applying this block. */
  readonly stateRoot: Uint8Array
  /** Hash of the authority set that finalizes this block. */
  readonly authoritySetHash: Uint8Array
  /** Hash of the parent's commit certificate carried in this block (zero at heights 0 and 1). */
  readonly lastCommitHash: Uint8Array
}

/**
 * A block: header, transactions, and the commit certificate of its parent
 * (so every block carries the proof that its parent is final). Wire form:
 * `[header, [tx bytes...], parent certificate bytes (empty at heights 0 and 1)]`.
 */
export interface Block {
  readonly header: BlockHeader
  readonly txs: readonly Tx[]
  /** Encoded commit certificate of the parent block. */
  readonly lastCommit: Uint8Array
  readonly hash: Uint8Array
  readonly bytes: Uint8Array
}

/** 32 zero bytes: the genesis block's parent and proposer. */
export const ZERO_HASH = new Uint8Array(32)

function headerToWire(h: BlockHeader): Encodable {
  return [h.version, h.chainId, u64(h.height), h.parentHash, u64(h.time), h.proposer, h.txRoot, h.stateRoot, h.authoritySetHash, h.lastCommitHash]
}

/** Hash of an encoded commit certificate as a header names it; zero for none. */
export function lastCommitHashOf(certBytes: Uint8Array): Uint8Array {
  return certBytes.length === 0 ? ZERO_HASH : taggedHash(DOMAIN.COMMIT, certBytes)
}

function headerFromWire(v: unknown): BlockHeader {
  const a = asArray(v, 'header', 10)
  const version = asU32(a[0], 'header.version')
  if (version !== BLOCK_VERSION) throw new CodecError('CODEC_SCHEMA', `unsupported block version ${version}`)
  return {
    version,
    chainId: asString(a[1], 'header.chainId', 128),
    height: asU64Number(a[2], 'header.height'),
    parentHash: asBytes(a[3], 'header.parentHash', 32),
    time: asU64Number(a[4], 'header.time'),
    proposer: asBytes(a[5], 'header.proposer', 32),
    txRoot: asBytes(a[6], 'header.txRoot', 32),
    stateRoot: asBytes(a[7], 'header.stateRoot', 32),
    authoritySetHash: asBytes(a[8], 'header.authoritySetHash', 32),
    lastCommitHash: asBytes(a[9], 'header.lastCommitHash', 32),
  }
}

/** Block hash: sha256(BLOCK_HEADER tag || 0x00 || encoded header). */
export function headerHash(h: BlockHeader): Uint8Array {
  return taggedHash(DOMAIN.BLOCK_HEADER, encodeTrusted(headerToWire(h)))
}

/** Assembles a block from a header, decoded transactions and the parent's encoded certificate. */
export function makeBlock(header: BlockHeader, txs: readonly Tx[], lastCommit: Uint8Array = new Uint8Array(0)): Block {
  const bytes = encodeTrusted([headerToWire(header), txs.map((t) => t.bytes), lastCommit])
  return { header, txs, lastCommit, hash: headerHash(header), bytes }
}

/** Limits for decoding a block. */
export interface DecodeBlockOpts {
  readonly chainId: string
  readonly maxBlockBytes: number
  readonly maxBlockTxs: number
  readonly maxTxBytes: number
  /** Verify transaction signatures while decoding (default true). */
  readonly verify?: boolean
  /** Skips the signature check of a transaction whose (id, signature) pair this returns true for. */
  readonly alreadyVerified?: (id: Uint8Array, signature: Uint8Array) => boolean
}

/** Decodes a block's wire bytes, checking size, encoding and every transaction's form. */
export function decodeBlock(bytes: Uint8Array, opts: DecodeBlockOpts): Block {
  if (bytes.length > opts.maxBlockBytes) throw new BlockError('BLOCK_TOO_LARGE', `block of ${bytes.length} bytes exceeds ${opts.maxBlockBytes}`)
  try {
    const a = asArray(decodeCanonical(bytes), 'block', 3)
    const header = headerFromWire(a[0])
    if (header.chainId !== opts.chainId) throw new BlockError('BLOCK_WRONG_CHAIN', `block is for chain ${JSON.stringify(header.chainId)}`)
    const raw = asArray(a[1], 'block.txs', undefined, opts.maxBlockTxs)
    const txOpts = {
      chainId: opts.chainId,
      maxBytes: opts.maxTxBytes,
      verify: opts.verify ?? true,
      ...(opts.alreadyVerified === undefined ? {} : { alreadyVerified: opts.alreadyVerified }),
    }
    const txs = raw.map((t, i) => decodeTx(asBytes(t, `block.txs[${i}]`), txOpts))
    const lastCommit = asBytes(a[2], 'block.lastCommit', undefined, 64 * 1024)
    return { header, txs, lastCommit, hash: headerHash(header), bytes }
  } catch (err) {
    if (err instanceof BlockError) throw err
    if (err instanceof CodecError) throw new BlockError('BLOCK_MALFORMED', `malformed block: ${err.message}`, { cause: err })
    if (err instanceof Error && 'code' in err && typeof err.code === 'string' && err.code.startsWith('TX_')) {
      throw new BlockError('BLOCK_INVALID_TX', `block holds an invalid transaction: ${err.message}`, { cause: err })
    }
    throw err
  }
}

/**
 * One transaction of a stored block, without decoding the others: for the
 * node's own store, whose blocks were verified before they were written.
 */
export function storedBlockTx(blockBytes: Uint8Array, index: number, chainId: string): Tx | undefined {
  const a = asArray(decodeTrusted(blockBytes), 'block', 3)
  const raw = asArray(a[1], 'block.txs')[index]
  if (raw === undefined) return undefined
  return decodeTx(asBytes(raw, 'block tx'), { chainId, maxBytes: Number.MAX_SAFE_INTEGER, verify: false })
}

/** JSON view of a header. */
export function headerToJSON(h: BlockHeader, hash: Uint8Array): Record<string, unknown> {
  return {
    hash: toHex(hash),
    height: h.height,
    chainId: h.chainId,
    parentHash: toHex(h.parentHash),
    time: h.time,
    timeIso: new Date(h.time).toISOString(),
    proposer: toHex(h.proposer),
    txRoot: toHex(h.txRoot),
    stateRoot: toHex(h.stateRoot),
    authoritySetHash: toHex(h.authoritySetHash),
    lastCommitHash: toHex(h.lastCommitHash),
  }
}

/** JSON view of a block (with transactions unless `withTxs` is false). */
export function blockToJSON(b: Block, withTxs = true): Record<string, unknown> {
  return {
    ...headerToJSON(b.header, b.hash),
    txCount: b.txs.length,
    size: b.bytes.length,
    ...(withTxs ? { txs: b.txs.map(txToJSON) } : {}),
  }
}
