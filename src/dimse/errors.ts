import { RadError, type ErrorCodes } from '../util/index.js'

/** Codes of the DICOM upper layer and DIMSE messages (PS3.8, PS3.7): what a peer sent that cannot be read. */
export type DimseCode = ErrorCodes<
  | 'DIMSE_PDU_MALFORMED'
  | 'DIMSE_PDU_TOO_LARGE'
  | 'DIMSE_COMMAND_MALFORMED'
  | 'DIMSE_IDENTIFIER_MALFORMED'
  | 'DIMSE_ASSOCIATION_REJECTED'
  | 'DIMSE_ABORTED'
  | 'DIMSE_TIMEOUT'
  | 'DIMSE_CONNECT_FAILED'
  | 'DIMSE_NO_CONTEXT'
  | 'DIMSE_UNKNOWN_PEER'
  | 'DIMSE_STORE_FAILED'
>

/** Bytes from a DICOM peer that break PS3.8 or PS3.7; the association is aborted (the peer is at fault: `penalize`). */
export class DimseError extends RadError<DimseCode> {
  constructor(code: DimseCode, message: string, opts?: { cause?: unknown; penalize?: boolean }) {
    super(code, message, { ...opts, penalize: opts?.penalize ?? true })
    this.name = 'DimseError'
  }
}
