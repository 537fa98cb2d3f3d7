import { DOMAIN, taggedHash } from '../crypto/index.js'
import { toHex } from '../util/index.js'
import { CodecError, asArray, asBytes, asString, asU32, asU64Number, decodeCanonical, encodeTrusted, u64, type Encodable } from './codec.js'
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
}

/** A block: header and transactions, with its hash and wire bytes. */
export interface Block {
  readonly header: BlockHeader
  readonly txs: readonly Tx[]
  readonly hash: Uint8Array
  readonly bytes: Uint8Array
}

/** 32 zero bytes: the genesis block's parent and proposer. */
export const ZERO_HASH = new Uint8Array(32)

function headerToWire(h: BlockHeader): Encodable {
  return [h.version, h.chainId, u64(h.height), h.parentHash, u64(h.time), h.proposer, h.txRoot, h.stateRoot, h.authoritySetHash]
}

function headerFromWire(v: unknown): BlockHeader {
  const a = asArray(v, 'header', 9)
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
  }
}

/** Block hash: sha256(BLOCK_HEADER tag || 0x00 || encoded header). */
export function headerHash(h: BlockHeader): Uint8Array {
  return taggedHash(DOMAIN.BLOCK_HEADER, encodeTrusted(headerToWire(h)))
}

/** Assembles a block from a header and already-encoded transactions. */
export function makeBlock(header: BlockHeader, txs: readonly Tx[]): Block {
  const bytes = encodeTrusted([headerToWire(header), txs.map((t) => t.bytes)])
  return { header, txs, hash: headerHash(header), bytes }
}

/** Limits for decoding a block. */
export interface DecodeBlockOpts {
  readonly chainId: string
  readonly maxBlockBytes: number
  readonly maxBlockTxs: number
  readonly maxTxBytes: number
  /** Verify transaction signatures while decoding (default true). */
  readonly verify?: boolean
}

/** Decodes a block's wire bytes, checking size, encoding and every transaction's form. */
export function decodeBlock(bytes: Uint8Array, opts: DecodeBlockOpts): Block {
  if (bytes.length > opts.maxBlockBytes) throw new BlockError('BLOCK_TOO_LARGE', `block of ${bytes.length} bytes exceeds ${opts.maxBlockBytes}`)
  try {
    const a = asArray(decodeCanonical(bytes), 'block', 2)
    const header = headerFromWire(a[0])
    if (header.chainId !== opts.chainId) throw new BlockError('BLOCK_WRONG_CHAIN', `block is for chain ${JSON.stringify(header.chainId)}`)
    const raw = asArray(a[1], 'block.txs', undefined, opts.maxBlockTxs)
    const txs = raw.map((t, i) => decodeTx(asBytes(t, `block.txs[${i}]`), { chainId: opts.chainId, maxBytes: opts.maxTxBytes, verify: opts.verify ?? true }))
    return { header, txs, hash: headerHash(header), bytes }
  } catch (err) {
    if (err instanceof BlockError) throw err
    if (err instanceof CodecError) throw new BlockError('BLOCK_MALFORMED', `malformed block: ${err.message}`, { cause: err })
    if (err instanceof Error && 'code' in err && typeof err.code === 'string' && err.code.startsWith('TX_')) {
      throw new BlockError('BLOCK_INVALID_TX', `block holds an invalid transaction: ${err.message}`, { cause: err })
    }
    throw err
  }
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
