import { equalBytes, toHex } from '../util/index.js'
import { asArray, asBytes, decodeCanonical, encodeTrusted, u64, asU64Number } from './codec.js'
import { makeBlock, lastCommitHashOf, BLOCK_VERSION, type Block, type BlockHeader } from './block.js'
import { decodeCertificate, encodeCertificate, verifyCertificate, type CommitCertificate, type VoterSet } from './commit.js'
import { proposerOrder, updateRotation } from './rotation.js'
import { BlockError, TxError } from './errors.js'
import { merkleRoot } from '../crypto/index.js'
import { authoritySet, quorumSize, type AuthoritySet } from './orgs.js'
import { getParams, type ChainParams } from './params.js'
import { StateOverlay, nextStateRoot, type StateMap, type StateWrites } from './state.js'
import { putBlockTime } from './block-times.js'
import { TX_TYPES } from './tx-types/registry.js'
import type { Tx } from './tx.js'

/**
 * The state machine. Pure and deterministic: the result depends only on the
 * state and the block; no clock, no randomness, no I/O. Transactions reach it
 * already decoded and signature-checked (decodeTx / decodeBlock).
 */

const NONCE_KEY = (sender: Uint8Array): string => `n/${toHex(sender)}`

/** Next nonce expected from `sender`. */
export function getNonce(s: StateMap | StateOverlay, sender: Uint8Array): number {
  const b = s.get(NONCE_KEY(sender))
  return b === undefined ? 0 : asU64Number(decodeCanonical(b), 'nonce')
}

/** The tip a new block builds on. */
export interface Parent {
  readonly header: BlockHeader
  readonly hash: Uint8Array
}

interface BlockEnv {
  readonly chainId: string
  readonly height: number
  readonly time: number
  readonly params: ChainParams
  readonly authorities: AuthoritySet
}

const PREV_SET_KEY = 'aset:prev'

/**
 * The voters that finalized the parent: the set in force at the parent's
 * height. It differs from the current set only right after a block that
 * changed the set; that block left the old set under PREV_SET_KEY.
 */
export function parentVoters(s: StateMap | StateOverlay): VoterSet {
  const b = s.get(PREV_SET_KEY)
  if (b === undefined) return authoritySet(s)
  const members = asArray(decodeCanonical(b), 'previous authority set').map((x) => ({ signKey: asBytes(x, 'previous authority key', 32) }))
  return { members, quorum: quorumSize(members.length) }
}

// Start of a block: its time in the ring of recent block times, rotation bookkeeping for its proposer and the signers of its parent's certificate.
function beginBlock(env: BlockEnv, s: StateOverlay, proposer: Uint8Array, lastCommit: CommitCertificate | null): void {
  putBlockTime(s, env.height, env.time)
  updateRotation(s, proposerOrder(s), env.height, proposer, lastCommit === null ? [] : lastCommit.sigs.map((x) => x.signer))
}

// End of a block: remember the set that finalizes this block when the block changed it.
function endBlock(env: BlockEnv, s: StateOverlay): void {
  const after = authoritySet(s)
  if (!equalBytes(after.hash, env.authorities.hash)) s.set(PREV_SET_KEY, encodeTrusted(env.authorities.members.map((m) => m.signKey)))
  else if (s.get(PREV_SET_KEY) !== undefined) s.delete(PREV_SET_KEY)
}

/** Applies one transaction on `s` (a child overlay the caller discards on error). Throws TxError. */
function applyTx(env: BlockEnv, s: StateOverlay, tx: Tx): void {
  if (tx.chainId !== env.chainId) throw new TxError('TX_WRONG_CHAIN', `transaction is for chain ${JSON.stringify(tx.chainId)}`)
  if (tx.bytes.length > env.params.maxTxBytes) throw new TxError('TX_TOO_LARGE', `transaction of ${tx.bytes.length} bytes exceeds ${env.params.maxTxBytes}`)
  const t = TX_TYPES.get(tx.type)
  if (t === undefined) throw new TxError('TX_UNKNOWN_TYPE', `unknown transaction type ${tx.type}`)
  const expected = getNonce(s, tx.sender)
  if (tx.nonce < expected) throw new TxError('TX_BAD_NONCE', `nonce ${tx.nonce} already used (next is ${expected})`)
  if (tx.nonce > expected) throw new TxError('TX_NONCE_GAP', `nonce ${tx.nonce} is ahead of the next expected ${expected}`)
  s.set(NONCE_KEY(tx.sender), encodeTrusted(u64(expected + 1)))
  t.apply(
    { chainId: env.chainId, state: s, height: env.height, time: env.time, params: env.params, authorities: env.authorities, sender: tx.sender, txId: tx.id },
    tx.payload,
  )
}

/** Checks a transaction against state without keeping its effects (mempool admission). */
export function checkTx(state: StateMap, parent: Parent, tx: Tx): void {
  const env: BlockEnv = {
    chainId: parent.header.chainId,
    height: parent.header.height + 1,
    time: parent.header.time + 1,
    params: getParams(state),
    authorities: authoritySet(state),
  }
  applyTx(env, new StateOverlay(state), tx)
}

/** What applying a block gives. */
export interface ApplyResult {
  readonly writes: StateWrites
  readonly stateRoot: Uint8Array
}

/**
 * Validates `block` against its parent and applies it to `state`: header
 * fields, limits, the parent's commit certificate, transaction root, every
 * transaction, and the state root. Throws BlockError; `state` is not modified.
 * Which authority may propose at which round is the consensus engine's check.
 */
export function applyBlock(state: StateMap, parent: Parent, block: Block): ApplyResult {
  const h = block.header
  const params = getParams(state)
  const authorities = authoritySet(state)
  if (h.version !== BLOCK_VERSION) throw new BlockError('BLOCK_MALFORMED', `unsupported block version ${h.version}`)
  if (h.chainId !== parent.header.chainId) throw new BlockError('BLOCK_WRONG_CHAIN', 'block is for another chain')
  if (h.height !== parent.header.height + 1) throw new BlockError('BLOCK_BAD_HEIGHT', `block height ${h.height} does not follow ${parent.header.height}`)
  if (!equalBytes(h.parentHash, parent.hash)) throw new BlockError('BLOCK_BAD_PARENT', 'block does not build on the current head')
  if (h.time <= parent.header.time) throw new BlockError('BLOCK_BAD_TIME', 'block time does not advance')
  if (!equalBytes(h.authoritySetHash, authorities.hash)) throw new BlockError('BLOCK_BAD_AUTHORITY_SET', 'block names another authority set')
  if (!authorities.members.some((m) => equalBytes(m.signKey, h.proposer))) throw new BlockError('BLOCK_BAD_PROPOSER', 'block proposer is not an authority')
  if (block.bytes.length > params.maxBlockBytes) throw new BlockError('BLOCK_TOO_LARGE', `block of ${block.bytes.length} bytes exceeds ${params.maxBlockBytes}`)
  if (block.txs.length > params.maxBlockTxs) throw new BlockError('BLOCK_TOO_LARGE', `block holds more than ${params.maxBlockTxs} transactions`)
  if (!equalBytes(h.txRoot, merkleRoot(block.txs.map((t) => t.id))))
    throw new BlockError('BLOCK_BAD_TX_ROOT', 'transaction root does not match the transactions')
  if (!equalBytes(h.lastCommitHash, lastCommitHashOf(block.lastCommit)))
    throw new BlockError('BLOCK_BAD_CERTIFICATE', 'parent certificate does not match the header')
  let lastCommit: CommitCertificate | null = null
  if (h.height >= 2) {
    if (block.lastCommit.length === 0) throw new BlockError('BLOCK_BAD_CERTIFICATE', "block does not carry its parent's commit certificate")
    lastCommit = decodeCertificate(block.lastCommit)
    verifyCertificate(lastCommit, h.chainId, parent.header.height, parent.hash, parentVoters(state))
  } else if (block.lastCommit.length !== 0) {
    throw new BlockError('BLOCK_BAD_CERTIFICATE', 'block 1 carries no parent certificate')
  }
  const env: BlockEnv = { chainId: h.chainId, height: h.height, time: h.time, params, authorities }
  const overlay = new StateOverlay(state)
  beginBlock(env, overlay, h.proposer, lastCommit)
  block.txs.forEach((tx, i) => {
    const s = overlay.child()
    try {
      applyTx(env, s, tx)
    } catch (err) {
      if (err instanceof TxError) throw new BlockError('BLOCK_INVALID_TX', `transaction ${i} (${toHex(tx.id)}) is invalid: ${err.message}`, { cause: err })
      throw err
    }
    s.mergeInto(overlay)
  })
  endBlock(env, overlay)
  const writes = overlay.writes()
  const stateRoot = nextStateRoot(parent.header.stateRoot, writes)
  if (!equalBytes(stateRoot, h.stateRoot)) throw new BlockError('BLOCK_BAD_STATE_ROOT', 'state root after the block does not match its header')
  return { writes, stateRoot }
}

/** A proposed block with what it did to the candidates. */
export interface BuildResult extends ApplyResult {
  readonly block: Block
  /** Candidates left out because they are invalid now, with the reason. */
  readonly rejected: readonly { readonly tx: Tx; readonly error: TxError }[]
}

/** Inputs of a new block besides the candidates. */
export interface BuildOpts {
  readonly time: number
  readonly proposer: Uint8Array
  /** The parent's commit certificate (null when building block 1). */
  readonly lastCommit: CommitCertificate | null
}

/**
 * Builds the next block from `candidates` in order, keeping each one that
 * applies, within the block limits. Used by the proposer; voters re-check
 * the result with applyBlock.
 */
export function buildBlock(state: StateMap, parent: Parent, candidates: Iterable<Tx>, opts: BuildOpts): BuildResult {
  const params = getParams(state)
  const authorities = authoritySet(state)
  const height = parent.header.height + 1
  const env: BlockEnv = { chainId: parent.header.chainId, height, time: opts.time, params, authorities }
  const overlay = new StateOverlay(state)
  const lastCommitBytes = opts.lastCommit === null ? new Uint8Array(0) : encodeCertificate(opts.lastCommit)
  beginBlock(env, overlay, opts.proposer, opts.lastCommit)
  const included: Tx[] = []
  const rejected: { tx: Tx; error: TxError }[] = []
  // Header, framing and the parent certificate take well under this margin.
  let bytes = 1024 + lastCommitBytes.length
  for (const tx of candidates) {
    if (included.length >= params.maxBlockTxs || bytes + tx.bytes.length + 5 > params.maxBlockBytes) break
    const s = overlay.child()
    try {
      applyTx(env, s, tx)
    } catch (err) {
      if (err instanceof TxError) {
        rejected.push({ tx, error: err })
        continue
      }
      throw err
    }
    s.mergeInto(overlay)
    included.push(tx)
    bytes += tx.bytes.length + 5
  }
  endBlock(env, overlay)
  const writes = overlay.writes()
  const stateRoot = nextStateRoot(parent.header.stateRoot, writes)
  const header: BlockHeader = {
    version: BLOCK_VERSION,
    chainId: parent.header.chainId,
    height,
    parentHash: parent.hash,
    time: opts.time,
    proposer: opts.proposer,
    txRoot: merkleRoot(included.map((t) => t.id)),
    stateRoot,
    authoritySetHash: authorities.hash,
    lastCommitHash: lastCommitHashOf(lastCommitBytes),
  }
  return { block: makeBlock(header, included, lastCommitBytes), writes, stateRoot, rejected }
}
