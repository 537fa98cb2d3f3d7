import type { AnyTxType } from './types.js'
import { noteTx } from './note.js'
import { orgTx } from './org.js'
import { evidenceTx } from './evidence.js'
import { registerStudyTx } from './study.js'

/** Every transaction type the chain knows, by wire name. One line per type. */
export const TX_TYPES: ReadonlyMap<string, AnyTxType> = new Map<string, AnyTxType>([
  [noteTx.name, noteTx as AnyTxType],
  [orgTx.name, orgTx as AnyTxType],
  [evidenceTx.name, evidenceTx as AnyTxType],
  [registerStudyTx.name, registerStudyTx as AnyTxType],
])
