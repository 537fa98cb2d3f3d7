export * from './codec.js'
export * from './errors.js'
export * from './params.js'
export * from './state.js'
export { merkleRoot } from '../crypto/index.js'
export * from './orgs.js'
export * from './tx.js'
export * from './block.js'
export * from './commit.js'
export * from './execute.js'
export * from './genesis.js'
export * from './tx-types/types.js'
export { TX_TYPES } from './tx-types/registry.js'
export { noteTx, MAX_NOTE_BYTES, type NotePayload } from './tx-types/note.js'
export { orgTx, proposalId, listProposals, type OrgAction } from './tx-types/org.js'
export * from './mempool.js'
export { evidenceTx, type EvidencePayload } from './tx-types/evidence.js'
export * from './rotation.js'
export {
  registerStudyTx,
  eraseStudyTx,
  getErased,
  isErased,
  listErased,
  getStudy,
  listStudies,
  nextVersion,
  studyToExtend,
  studyToJSON,
  studyVersions,
  type EraseStudyPayload,
  type RegisterStudyPayload,
  type StudyJSON,
  type StudyRecord,
  type StudyVersion,
  type StudyVersionRef,
} from './tx-types/study.js'
export { placementOrder, holdersOf } from './placement.js'
export { getEnvelopeKeys, kemKeyTx, type KemKeyPayload } from './tx-types/kem.js'
export {
  LEASE_SCOPES,
  LEASE_CLAIM_BYTES,
  claimWindowMs,
  leaseClaimBytes,
  leaseEndedBy,
  leaseOpenAt,
  violationReported,
  violationTx,
  type ViolationPayload,
  MAX_LEASE_MS,
  MIN_LEASE_MS,
  MAX_PURPOSE_BYTES,
  accessTx,
  consentCovers,
  consentFor,
  consentTx,
  getLease,
  leaseActive,
  leaseApproveTx,
  leaseDenyTx,
  leaseGrantTx,
  leaseIdFromHex,
  leaseRequestTx,
  leaseRevokeTx,
  leaseToJSON,
  listLeases,
  type AccessKind,
  type AccessPayload,
  type ConsentPolicy,
  type LeaseDenyPayload,
  type LeaseGrantPayload,
  type LeaseRecord,
  type LeaseRef,
  type LeaseRequestPayload,
  type LeaseScope,
  type LeaseStatus,
  type LeaseJSON,
} from './tx-types/lease.js'
export { getServed, servedTx, type ServedClaim, type ServedPayload, type ServedTotals } from './tx-types/served.js'
export { BLOCK_TIME_RING, blockTimeAt } from './block-times.js'
