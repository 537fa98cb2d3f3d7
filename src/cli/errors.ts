import { RadError, type ErrorCodes } from '../util/index.js'

/**
 * Why a command refused to run or gave up.
 * - CLI_BAD_ARGUMENT: an argument or option value is out of range or malformed.
 * - CLI_NO_TOKEN: `--node` is a URL but RADCHAIN_API_TOKEN is not set.
 * - CLI_TIMEOUT: a transaction was not final within the command's wait.
 */
export type CliCode = ErrorCodes<'CLI_BAD_ARGUMENT' | 'CLI_NO_TOKEN' | 'CLI_TIMEOUT'>

/** A command's own failure (its arguments, its waits). */
export class CliError extends RadError<CliCode> {
  constructor(code: CliCode, message: string, opts?: { cause?: unknown }) {
    super(code, message, opts)
    this.name = 'CliError'
  }
}
