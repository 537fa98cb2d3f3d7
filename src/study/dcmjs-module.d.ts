// Type declarations for the part of dcmjs (0.52, no bundled types) that
// src/study uses. Checked against node_modules/dcmjs/build/dcmjs.es.js:
// DicomMessage.readFile, DicomDict#write, DicomMetaDictionary.dictionary and
// the loglevel logger exported as `log`.
declare module 'dcmjs' {
  /** One element as dcmjs reads it: DICOM JSON model (PS3.18 F.2) plus the raw value. */
  interface DcmjsElement {
    vr: string
    Value?: unknown[]
    _rawValue?: unknown
  }
  type DcmjsDataset = Record<string, DcmjsElement>

  interface DcmjsReadOptions {
    ignoreErrors?: boolean
    untilTag?: string | null
    includeUntilTagValue?: boolean
    noCopy?: boolean
    forceStoreRaw?: boolean
  }

  interface DcmjsWriteOptions {
    allowInvalidVRLength?: boolean
  }

  class DcmjsDicomDict {
    constructor(meta: DcmjsDataset)
    meta: DcmjsDataset
    dict: DcmjsDataset
    write(options?: DcmjsWriteOptions): ArrayBuffer
  }

  interface DcmjsDictionaryEntry {
    tag: string
    vr: string
    name: string
    vm: string
    version?: string
  }

  interface DcmjsLogger {
    setLevel(level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent'): void
    getLogger(name: string): DcmjsLogger
  }

  export const data: {
    DicomMessage: {
      readFile(buffer: ArrayBuffer, options?: DcmjsReadOptions): DcmjsDicomDict
    }
    DicomDict: typeof DcmjsDicomDict
    DicomMetaDictionary: {
      /** Keyed by '(GGGG,EEEE)'. */
      dictionary: Record<string, DcmjsDictionaryEntry>
    }
  }
  export const log: DcmjsLogger
  export type { DcmjsElement, DcmjsDataset }
}
