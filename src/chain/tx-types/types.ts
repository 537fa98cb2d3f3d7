import type { Encodable } from '../codec.js'
import type { ChainParams } from '../params.js'
import type { StateOverlay } from '../state.js'
import type { AuthoritySet } from '../orgs.js'

/** What a transaction type's `apply` may read and write. */
export interface TxContext {
  readonly chainId: string
  /** State as of this transaction; writes are rolled back if `apply` throws. */
  readonly state: StateOverlay
  /** Height of the block being applied. */
  readonly height: number
  /** Chain time of the block (ms since the Unix epoch, from its header). */
  readonly time: number
  readonly params: ChainParams
  /** The authority set in force for this block (before the block's own changes). */
  readonly authorities: AuthoritySet
  /** Signing key of the transaction's sender. */
  readonly sender: Uint8Array
  /** Transaction id. */
  readonly txId: Uint8Array
}

/**
 * One transaction type: its payload codec and its state transition. Adding a
 * type is one file exporting a TxType plus one line in registry.ts.
 */
export interface TxType<P> {
  /** Name on the wire, in the API and in the CLI. */
  readonly name: string
  /** Payload from its decoded wire form; throws CodecError on bad shape. */
  decode(raw: unknown): P
  /** Wire form of a payload. */
  encode(p: P): Encodable
  /** JSON view for the API. */
  toJSON(p: P): unknown
  /** Deterministic state transition; throws TxError when the transaction is invalid here. */
  apply(ctx: TxContext, p: P): void
}

/** A TxType with its payload type erased, for the registry (methods are bivariant). */
export type AnyTxType = TxType<unknown>
