export * from './config.js'
export * from './init.js'
export type { RadNode, RadNodeOpts } from './node.js'
export * from './daemon.js'
export type { ChainService, ChainEvents } from './chain-service.js'
export { FAULTS_FILE, NO_FAULTS, loadFaults, parseFaults, type Faults, type FaultsJSON } from './faults.js'
export * from './errors.js'
export {
  DICOMWEB_SCOPES,
  DICOMWEB_TOKEN_PREFIX,
  createDicomwebToken,
  listDicomwebTokens,
  revokeDicomwebToken,
  type DicomwebTokenRecord,
} from './dicomweb-tokens.js'
