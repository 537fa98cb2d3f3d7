import type { AnyTxType } from './types.js'
import { noteTx } from './note.js'
import { orgTx } from './org.js'
import { evidenceTx } from './evidence.js'
import { eraseStudyTx, registerStudyTx } from './study.js'
import { kemKeyTx } from './kem.js'
import { servedTx } from './served.js'
import { accessTx, violationTx, consentTx, leaseApproveTx, leaseDenyTx, leaseGrantTx, leaseRequestTx, leaseRevokeTx } from './lease.js'

/** Every transaction type the chain knows, by wire name. One line per type. */
export const TX_TYPES: ReadonlyMap<string, AnyTxType> = new Map<string, AnyTxType>([
  [noteTx.name, noteTx as AnyTxType],
  [orgTx.name, orgTx as AnyTxType],
  [evidenceTx.name, evidenceTx as AnyTxType],
  [registerStudyTx.name, registerStudyTx as AnyTxType],
  [eraseStudyTx.name, eraseStudyTx as AnyTxType],
  [kemKeyTx.name, kemKeyTx as AnyTxType],
  [consentTx.name, consentTx as AnyTxType],
  [leaseRequestTx.name, leaseRequestTx as AnyTxType],
  [leaseApproveTx.name, leaseApproveTx as AnyTxType],
  [leaseGrantTx.name, leaseGrantTx as AnyTxType],
  [leaseDenyTx.name, leaseDenyTx as AnyTxType],
  [leaseRevokeTx.name, leaseRevokeTx as AnyTxType],
  [accessTx.name, accessTx as AnyTxType],
  [violationTx.name, violationTx as AnyTxType],
  [servedTx.name, servedTx as AnyTxType],
])
