import { RadError, type ErrorCodes } from '../util/index.js'

/** Codes of the DICOMweb layer (PS3.18): malformed bodies, media types, bounds, queries. */
export type DicomwebCode = ErrorCodes<
  | 'DICOMWEB_MULTIPART_MALFORMED'
  | 'DICOMWEB_UNSUPPORTED_MEDIA_TYPE'
  | 'DICOMWEB_BODY_TOO_LARGE'
  | 'DICOMWEB_BAD_QUERY'
  | 'DICOMWEB_UNAUTHORIZED'
  | 'DICOMWEB_FORBIDDEN'
  | 'DICOMWEB_NOT_FOUND'
  | 'DICOMWEB_LEASE_ENDED'
  | 'DICOMWEB_METHOD_NOT_ALLOWED'
  | 'DICOMWEB_NOT_ACCEPTABLE'
  | 'DICOMWEB_BAD_CONFIG'
>

/** A refusal of the DICOMweb layer; the listener answers it with the registry's status for its code. */
export class DicomwebError extends RadError<DicomwebCode> {
  constructor(code: DicomwebCode, message: string, opts?: { cause?: unknown }) {
    super(code, message, opts)
    this.name = 'DicomwebError'
  }
}
