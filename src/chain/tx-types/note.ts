import { asArray, asString } from '../codec.js'
import type { TxType } from './types.js'

/** Payload of a note: free text, for tests and load. No state beyond the sender's nonce. */
export interface NotePayload {
  readonly text: string
}

/** Longest note text in UTF-8 bytes. */
export const MAX_NOTE_BYTES = 4096

/** `note`: any key may record a short text on the ledger. */
export const noteTx: TxType<NotePayload> = {
  name: 'note',
  decode(raw) {
    const a = asArray(raw, 'note', 1)
    return { text: asString(a[0], 'note.text', MAX_NOTE_BYTES) }
  },
  encode: (p) => [p.text],
  toJSON: (p) => ({ text: p.text }),
  apply() {},
}
