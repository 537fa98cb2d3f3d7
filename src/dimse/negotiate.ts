import { PC_RESULT, type ContextAnswer, type ProposedContext } from './pdu.js'
import { QR_FIND, QR_MOVE } from './query.js'

/** Verification SOP Class (PS3.4 A.4): C-ECHO. */
export const VERIFICATION_SOP_CLASS = '1.2.840.10008.1.1'

/** Every Storage SOP Class UID starts with this (PS3.4 B.5, PS3.6 Annex A): the SCP takes any, not a fixed list. */
export const STORAGE_SOP_CLASS_PREFIX = '1.2.840.10008.5.1.4.1.1.'

/** Transfer syntaxes (PS3.5 A.4, PS3.6 Annex A) the SCP accepts; datasets are stored as they come, never transcoded. */
export const ACCEPTED_TRANSFER_SYNTAXES: readonly string[] = [
  '1.2.840.10008.1.2.1', // Explicit VR Little Endian (preferred)
  '1.2.840.10008.1.2', // Implicit VR Little Endian
  '1.2.840.10008.1.2.1.99', // Deflated Explicit VR Little Endian
  '1.2.840.10008.1.2.4.50', // JPEG Baseline (Process 1)
  '1.2.840.10008.1.2.4.51', // JPEG Extended (Process 2 & 4)
  '1.2.840.10008.1.2.4.57', // JPEG Lossless, Non-Hierarchical (Process 14)
  '1.2.840.10008.1.2.4.70', // JPEG Lossless, First-Order Prediction (Process 14, SV1)
  '1.2.840.10008.1.2.4.80', // JPEG-LS Lossless
  '1.2.840.10008.1.2.4.81', // JPEG-LS Lossy (Near-Lossless)
  '1.2.840.10008.1.2.4.90', // JPEG 2000 (Lossless Only)
  '1.2.840.10008.1.2.4.91', // JPEG 2000
  '1.2.840.10008.1.2.5', // RLE Lossless
]

const EXPLICIT_LE = '1.2.840.10008.1.2.1'
const ACCEPTED = new Set(ACCEPTED_TRANSFER_SYNTAXES)
/** Verification carries no dataset, a query an identifier: the two uncompressed little-endian syntaxes are all they need. */
const VERIFICATION_SYNTAXES = new Set(['1.2.840.10008.1.2', EXPLICIT_LE])

/**
 * The answer to each proposed presentation context (PS3.8 9.3.3.2): a
 * storage SOP class, Verification, or Study / Patient Root Query/Retrieve
 * FIND or MOVE (PS3.4 C.6.1, C.6.2; identifiers in Implicit or Explicit VR
 * Little Endian) with a supported transfer syntax is accepted with Explicit
 * VR Little Endian when proposed, else the first proposed one supported;
 * another abstract syntax (C-GET among them) is refused as not
 * supported, and a context none of whose transfer syntaxes is supported
 * (Explicit VR Big Endian alone, for example) as such.
 */
export function answerContexts(proposed: readonly ProposedContext[]): ContextAnswer[] {
  return proposed.map((c) => {
    const verification = c.abstractSyntax === VERIFICATION_SOP_CLASS || QR_FIND.has(c.abstractSyntax) || QR_MOVE.has(c.abstractSyntax)
    if (!verification && !c.abstractSyntax.startsWith(STORAGE_SOP_CLASS_PREFIX))
      return { id: c.id, result: PC_RESULT.abstractSyntaxNotSupported, transferSyntax: c.transferSyntaxes[0] ?? EXPLICIT_LE }
    const ok = verification ? VERIFICATION_SYNTAXES : ACCEPTED
    const ts = c.transferSyntaxes.includes(EXPLICIT_LE) ? EXPLICIT_LE : c.transferSyntaxes.find((t) => ok.has(t))
    return ts === undefined
      ? { id: c.id, result: PC_RESULT.transferSyntaxesNotSupported, transferSyntax: c.transferSyntaxes[0] ?? EXPLICIT_LE }
      : { id: c.id, result: PC_RESULT.acceptance, transferSyntax: ts }
  })
}
