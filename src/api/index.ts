/** Local HTTP API of the daemon: the backend contract, the server and its client. */
export type { ApiBackend, NodeStatus, TxStatus, BlockView, NodeEvent, PeerView, OrgVote, OrgsView } from './backend.js'
export * from './errors.js'
export * from './discovery.js'
export * from './server.js'
export * from './sse.js'
export { ApiClient, DEFAULT_CLIENT_TIMEOUT_MS, WAIT_SLACK_MS, MAX_RESPONSE_BYTES, MAX_EVENT_BYTES, type ApiClientOpts, type SubmitResult } from './client.js'
