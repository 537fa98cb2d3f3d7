import { RadError, type ErrorCodes } from '../util/index.js'

/**
 * Devnet failure codes: the DEVNET_* family; DEMO_FAILED when a step of the
 * demo does not turn out as it should; JOB_FAILED when a daemon job failed
 * without a code of its own (`waitJob`).
 */
export type DevnetCode = ErrorCodes<
  | 'DEVNET_EXISTS'
  | 'DEVNET_NOT_FOUND'
  | 'DEVNET_BAD_ORG'
  | 'DEVNET_START_TIMEOUT'
  | 'DEVNET_DAEMON_EXITED'
  | 'DEVNET_NOT_RUNNING'
  | 'DEVNET_HOSTS'
  | 'DEMO_FAILED'
  | 'JOB_FAILED'
>

/** A devnet failure. */
export class DevnetError extends RadError<DevnetCode> {
  constructor(code: DevnetCode, message: string) {
    super(code, message)
    this.name = 'DevnetError'
  }
}
