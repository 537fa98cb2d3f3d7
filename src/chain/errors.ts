import { RadError, type ErrorCodes } from '../util/index.js'

/**
 * Why a transaction was refused. TX_REJECTED stands for a refusal reported
 * without a reason (a client waiting on a transaction's status uses it when
 * the status carries no code).
 */
export type TxCode = ErrorCodes<
  | 'TX_MALFORMED'
  | 'TX_TOO_LARGE'
  | 'TX_WRONG_CHAIN'
  | 'TX_UNKNOWN_TYPE'
  | 'TX_BAD_SIGNATURE'
  | 'TX_BAD_NONCE'
  | 'TX_NONCE_GAP'
  | 'TX_UNAUTHORIZED'
  | 'TX_INVALID'
  | 'TX_DUPLICATE'
  | 'TX_ALREADY_EXTENDED'
  | 'TX_MEMPOOL_FULL'
  | 'TX_SENDER_LIMIT'
  | 'TX_REJECTED'
>

/** A refused transaction. */
export class TxError extends RadError<TxCode> {
  constructor(code: TxCode, message: string, opts?: { cause?: unknown; penalize?: boolean }) {
    super(code, message, opts)
    this.name = 'TxError'
  }
}

/** Why a block was refused. */
export type BlockCode = ErrorCodes<
  | 'BLOCK_MALFORMED'
  | 'BLOCK_TOO_LARGE'
  | 'BLOCK_WRONG_CHAIN'
  | 'BLOCK_BAD_HEIGHT'
  | 'BLOCK_BAD_PARENT'
  | 'BLOCK_BAD_TIME'
  | 'BLOCK_BAD_PROPOSER'
  | 'BLOCK_BAD_AUTHORITY_SET'
  | 'BLOCK_BAD_TX_ROOT'
  | 'BLOCK_BAD_STATE_ROOT'
  | 'BLOCK_INVALID_TX'
  | 'BLOCK_BAD_CERTIFICATE'
>

/** A refused block. Blocks come from peers, so these penalize by default. */
export class BlockError extends RadError<BlockCode> {
  constructor(code: BlockCode, message: string, opts?: { cause?: unknown; penalize?: boolean }) {
    super(code, message, { penalize: true, ...opts })
    this.name = 'BlockError'
  }
}

/** Why a genesis file was refused. */
export type GenesisCode = ErrorCodes<'GENESIS_NOT_FOUND' | 'GENESIS_INVALID'>

/** A refused genesis file. */
export class GenesisError extends RadError<GenesisCode> {
  constructor(code: GenesisCode, message: string, opts?: { cause?: unknown }) {
    super(code, message, opts)
    this.name = 'GenesisError'
  }
}
