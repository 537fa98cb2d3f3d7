/** radchain network layer: admitted organizations, channels, request/response, peer scores. */
export {
  P2PNode,
  DEFAULT_DIAL_INTERVAL_MS,
  DIAL_TIMEOUT_MS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_MAX_RESPONSE_BYTES,
  STOP_GRACE_MS,
  STREAM_WINDOW_BYTES,
} from './node.js'
export type { P2PInit, ChannelOpts, HandleOpts, RequestOpts, PeerInfo, P2PEvents } from './node.js'
export { P2PError, isP2PError } from './errors.js'
export type { P2PErrorCode } from './errors.js'
export { FrameDecoder, encodeFrame, encodeFrameHeader, FRAME_HEADER_BYTES, MAX_FRAME_BYTES } from './frame.js'
export { PeerScores, PENALTY, BAN_THRESHOLD, BAN_MS, SCORE_AFTER_BAN, RECOVERY_PER_SECOND } from './scores.js'
export type { PenaltyResult } from './scores.js'
export { DialBackoff, MAX_DIAL_BACKOFF_MS } from './backoff.js'
export { BoundedQueue } from './bounded-queue.js'
export { CHANNEL_QUEUE_MAX_MESSAGES, CHANNEL_QUEUE_MAX_BYTES, FRAME_TIMEOUT_MS, DRAIN_TIMEOUT_MS, OPEN_STREAM_TIMEOUT_MS } from './channel.js'
export { STATUS_OK, STATUS_ERROR, ACK_TIMEOUT_MS, INBOUND_PER_PEER } from './reqresp.js'
export type { RequestHandlerOpts } from './reqresp.js'
export { protocolId, peerIdFromOrgKey, orgKeyOf, privateKeyFromSeed, ORG_KEY_BYTES } from './identity.js'
export * from './protocols/chunks/index.js'
export { PipeBudget, PipeClient, servePipe, PIPE_MAX_QUEUED, PIPE_MAX_UNSENT_BYTES } from './pipe.js'
