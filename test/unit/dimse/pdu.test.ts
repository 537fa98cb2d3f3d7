import t from 'tap'
import fc from 'fast-check'
import {
  ABORT,
  APPLICATION_CONTEXT,
  DimseError,
  PC_RESULT,
  PDU_TYPE,
  PduReader,
  REJECT,
  answerContexts,
  decodePdu,
  encodePdu,
  fragmentPData,
  type AssociateAc,
  type AssociateRq,
  type PData,
  type Pdu,
} from '../../../src/dimse/index.js'

const RQ: AssociateRq = {
  type: PDU_TYPE.associateRq,
  protocolVersion: 1,
  calledAe: 'RADCHAIN',
  callingAe: 'STORESCU',
  applicationContext: APPLICATION_CONTEXT,
  contexts: [
    { id: 1, abstractSyntax: '1.2.840.10008.1.1', transferSyntaxes: ['1.2.840.10008.1.2'] },
    { id: 3, abstractSyntax: '1.2.840.10008.5.1.4.1.1.2', transferSyntaxes: ['1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2'] },
  ],
  userInfo: {
    maxPduLength: 16384,
    implementationClassUid: '1.2.276.0.7230010.3.0.3.6.7',
    implementationVersionName: 'OFFIS_DCMTK_367',
    asyncOps: { invoked: 1, performed: 1 },
    roles: [{ sopClass: '1.2.840.10008.5.1.4.1.1.2', scu: true, scp: false }],
  },
}

/** Reads whole PDUs out of `bytes` fed in the given pieces. */
function readAll(pieces: Uint8Array[], max = 1 << 20): Pdu[] {
  const r = new PduReader(max)
  const out: Pdu[] = []
  for (const p of pieces) {
    r.push(p)
    for (let raw = r.next(); raw !== undefined; raw = r.next()) out.push(decodePdu(raw.type, raw.body))
  }
  return out
}

t.test('A-ASSOCIATE-RQ and -AC round trip (PS3.8 9.3.2, 9.3.3)', async (t) => {
  const bytes = encodePdu(RQ)
  t.equal(bytes[0], 0x01)
  t.equal(Buffer.from(bytes).readUInt32BE(2), bytes.length - 6, 'the header length counts the variable field')
  t.same(readAll([bytes]), [RQ])
  const ac: AssociateAc = {
    type: PDU_TYPE.associateAc,
    protocolVersion: 1,
    calledAe: 'RADCHAIN',
    callingAe: 'STORESCU',
    applicationContext: APPLICATION_CONTEXT,
    contexts: answerContexts(RQ.contexts),
    userInfo: { maxPduLength: 262144, implementationClassUid: '2.25.1', implementationVersionName: 'RADCHAIN_0_1' },
  }
  t.same(readAll([encodePdu(ac)]), [ac])
})

t.test('release, abort and reject round trip', async (t) => {
  const pdus: Pdu[] = [
    { type: PDU_TYPE.releaseRq },
    { type: PDU_TYPE.releaseRp },
    { type: PDU_TYPE.abort, source: ABORT.sourceProvider, reason: ABORT.reasonInvalidParameter },
    { type: PDU_TYPE.associateRj, result: REJECT.resultPermanent, source: REJECT.sourceUser, reason: REJECT.userCallingAeNotRecognized },
  ]
  t.same(readAll(pdus.map(encodePdu)), pdus)
  t.same([...encodePdu(pdus[3] as Pdu)], [0x03, 0, 0, 0, 0, 4, 0, 1, 1, 3], 'A-ASSOCIATE-RJ bytes as PS3.8 Table 9-21 lays them out')
})

t.test('PDUs split at every byte, or run together, read back the same', async (t) => {
  const pdus: Pdu[] = [
    RQ,
    { type: PDU_TYPE.pData, pdvs: [{ contextId: 3, command: true, last: true, data: Uint8Array.of(1, 2, 3, 4) }] },
    { type: PDU_TYPE.releaseRq },
  ]
  const all = Buffer.concat(pdus.map(encodePdu))
  t.same(readAll([all]), pdus, 'all in one chunk')
  t.same(readAll([...all].map((b) => Uint8Array.of(b))), pdus, 'one byte at a time')
})

t.test('P-DATA-TF: PDV control bits (PS3.8 E.2), fragments reassembled', async (t) => {
  const data = new Uint8Array(10_000).map((_, i) => i & 0xff)
  const pdus = fragmentPData(5, false, data, 4096)
  t.ok(pdus.length > 2, 'cut into several PDUs')
  const back = readAll(pdus) as PData[]
  for (const p of back) t.ok(encodePdu(p).length - 6 <= 4096, 'no PDU above the peer maximum')
  const pdvs = back.flatMap((p) => p.pdvs)
  t.ok(
    pdvs.every((v) => v.contextId === 5 && !v.command),
    'context and data bit kept',
  )
  t.same(
    pdvs.map((v) => v.last),
    pdvs.map((_, i) => i === pdvs.length - 1),
    'only the last fragment has the last bit',
  )
  t.same(Buffer.concat(pdvs.map((v) => v.data)), Buffer.from(data), 'reassembled')
  const cmd = decodePdu(
    PDU_TYPE.pData,
    encodePdu({ type: PDU_TYPE.pData, pdvs: [{ contextId: 1, command: true, last: true, data: new Uint8Array(2) }] }).subarray(6),
  ) as PData
  t.equal(cmd.pdvs[0]?.command, true)
  t.same([...encodePdu(cmd)].slice(6, 12), [0, 0, 0, 4, 1, 0x03], 'item length, context id, control header 0x03')
})

t.test('a PDU longer than the maximum is refused from its header, before its body is buffered', async (t) => {
  const r = new PduReader(1024)
  const head = Buffer.alloc(6)
  head[0] = PDU_TYPE.pData
  head.writeUInt32BE(0x7fffffff, 2)
  r.push(head)
  t.throws(() => r.next(), { name: 'DimseError', code: 'DIMSE_PDU_TOO_LARGE' })
  t.equal(r.buffered, 6, 'only the header held')
})

t.test('truncated and malformed PDUs are refused with DIMSE_PDU_MALFORMED', async (t) => {
  const rq = encodePdu(RQ)
  // A truncated stream is simply not yet a PDU.
  t.same(readAll([rq.subarray(0, rq.length - 1)]), [], 'one byte short: nothing yet')
  const body = rq.subarray(6)
  for (const cut of [10, 67, 70, body.length - 3])
    t.throws(() => decodePdu(PDU_TYPE.associateRq, body.subarray(0, cut)), { name: 'DimseError', code: 'DIMSE_PDU_MALFORMED' }, `RQ cut at ${cut}`)
  t.throws(() => decodePdu(0x09, new Uint8Array(4)), { code: 'DIMSE_PDU_MALFORMED' }, 'unknown type')
  const r = new PduReader(100)
  r.push(Uint8Array.of(0x42, 0, 0, 0, 0, 0))
  t.throws(() => r.next(), { code: 'DIMSE_PDU_MALFORMED' }, 'unknown type refused from the header')
  t.throws(() => decodePdu(PDU_TYPE.pData, Uint8Array.of(0, 0, 0, 9, 1, 3, 0)), { code: 'DIMSE_PDU_MALFORMED' }, 'a PDV running past its PDU')
  t.throws(() => decodePdu(PDU_TYPE.pData, Uint8Array.of(0, 0, 0, 2, 1, 0x07)), { code: 'DIMSE_PDU_MALFORMED' }, 'reserved control bits')
  t.throws(() => decodePdu(PDU_TYPE.pData, new Uint8Array(0)), { code: 'DIMSE_PDU_MALFORMED' }, 'no PDV')
  t.throws(() => decodePdu(PDU_TYPE.releaseRq, new Uint8Array(3)), { code: 'DIMSE_PDU_MALFORMED' })
  t.throws(() => decodePdu(PDU_TYPE.abort, new Uint8Array(5)), { code: 'DIMSE_PDU_MALFORMED' })
  const noUser = encodePdu({ ...RQ, userInfo: { maxPduLength: 0, implementationClassUid: '1.2' } }).subarray(6)
  // Drop the user information item (the last one).
  const ui = Buffer.from(noUser).lastIndexOf(0x50)
  t.throws(() => decodePdu(PDU_TYPE.associateRq, noUser.subarray(0, ui)), { code: 'DIMSE_PDU_MALFORMED' }, 'no user information')
})

t.test('random bytes never escape as anything but DimseError', async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 7 }), fc.uint8Array({ maxLength: 300 }), (type, body) => {
      try {
        decodePdu(type, body)
      } catch (err) {
        if (!(err instanceof DimseError)) throw err
      }
    }),
    { seed: 16, numRuns: 2000 },
  )
  const valid = encodePdu(RQ).subarray(6)
  fc.assert(
    fc.property(fc.integer({ min: 0, max: valid.length - 1 }), fc.integer({ min: 0, max: 255 }), (i, b) => {
      const m = Uint8Array.from(valid)
      m[i] = b
      try {
        decodePdu(PDU_TYPE.associateRq, m)
      } catch (err) {
        if (!(err instanceof DimseError)) throw err
      }
    }),
    { seed: 16, numRuns: 2000 },
  )
  t.pass('no other error')
})

t.test('negotiation: storage classes and Verification accepted, explicit LE preferred, others refused (PS3.8 Table 9-18)', async (t) => {
  const a = answerContexts([
    { id: 1, abstractSyntax: '1.2.840.10008.5.1.4.1.1.481.3', transferSyntaxes: ['1.2.840.10008.1.2', '1.2.840.10008.1.2.1'] },
    { id: 3, abstractSyntax: '1.2.840.10008.5.1.4.1.1.2', transferSyntaxes: ['1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2'] },
    { id: 5, abstractSyntax: '1.2.840.10008.5.1.4.1.1.2', transferSyntaxes: ['1.2.840.10008.1.2.2'] },
    { id: 7, abstractSyntax: '1.2.840.10008.5.1.4.1.2.2.3', transferSyntaxes: ['1.2.840.10008.1.2.1'] },
    { id: 9, abstractSyntax: '1.2.840.10008.1.1', transferSyntaxes: ['1.2.840.10008.1.2'] },
    { id: 11, abstractSyntax: '1.2.840.10008.5.1.4.1.1.7', transferSyntaxes: ['1.2.3.4', '1.2.840.10008.1.2.5'] },
  ])
  t.same(
    a.map((c) => [c.id, c.result, c.result === PC_RESULT.acceptance ? c.transferSyntax : '']),
    [
      [1, PC_RESULT.acceptance, '1.2.840.10008.1.2.1'],
      [3, PC_RESULT.acceptance, '1.2.840.10008.1.2.4.90'],
      [5, PC_RESULT.transferSyntaxesNotSupported, ''],
      [7, PC_RESULT.abstractSyntaxNotSupported, ''],
      [9, PC_RESULT.acceptance, '1.2.840.10008.1.2'],
      [11, PC_RESULT.acceptance, '1.2.840.10008.1.2.5'],
    ],
  )
  // Query/Retrieve FIND and MOVE: identifiers in uncompressed little endian only (PS3.4 C.6).
  t.same(
    answerContexts([
      { id: 1, abstractSyntax: '1.2.840.10008.5.1.4.1.2.2.1', transferSyntaxes: ['1.2.840.10008.1.2.4.50'] },
      { id: 3, abstractSyntax: '1.2.840.10008.5.1.4.1.2.2.2', transferSyntaxes: ['1.2.840.10008.1.2'] },
      { id: 5, abstractSyntax: '1.2.840.10008.5.1.4.1.2.1.1', transferSyntaxes: ['1.2.840.10008.1.2', '1.2.840.10008.1.2.1'] },
    ]).map((c) => [c.id, c.result, c.result === PC_RESULT.acceptance ? c.transferSyntax : '']),
    [
      [1, PC_RESULT.transferSyntaxesNotSupported, ''],
      [3, PC_RESULT.acceptance, '1.2.840.10008.1.2'],
      [5, PC_RESULT.acceptance, '1.2.840.10008.1.2.1'],
    ],
  )
})
