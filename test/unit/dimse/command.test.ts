import t from 'tap'
import { CMD, COMMAND_FIELD, NO_DATASET, STATUS, decodeCommand, encodeCommand, encodeFileMeta } from '../../../src/dimse/index.js'
import { TAG, firstString, parseDicom } from '../../../src/study/index.js'

t.test('a command set round trips, with its group length (PS3.7 E.1-1), implicit VR little endian', async (t) => {
  const bytes = encodeCommand(
    new Map<number, string | number>([
      [CMD.affectedSopClassUid, '1.2.840.10008.5.1.4.1.1.2'],
      [CMD.commandField, COMMAND_FIELD.cStoreRsp],
      [CMD.messageIdBeingRespondedTo, 7],
      [CMD.dataSetType, NO_DATASET],
      [CMD.status, STATUS.cannotUnderstand],
      [CMD.errorComment, 'odd'],
      [CMD.affectedSopInstanceUid, '1.2.3.4'],
    ]),
  )
  const b = Buffer.from(bytes)
  t.same([b.readUInt16LE(0), b.readUInt16LE(2), b.readUInt32LE(4)], [0, 0, 4], '(0000,0000) UL, length 4')
  t.equal(b.readUInt32LE(8), b.length - 12, 'group length counts the elements after it')
  const c = decodeCommand(bytes)
  t.equal(c.field, COMMAND_FIELD.cStoreRsp)
  t.equal(c.us(CMD.messageIdBeingRespondedTo), 7)
  t.equal(c.us(CMD.status), 0xc000)
  t.equal(c.hasDataset, false)
  t.equal(c.text(CMD.affectedSopClassUid), '1.2.840.10008.5.1.4.1.1.2', 'odd-length UID padded with NUL and read back without it')
  t.equal(c.text(CMD.errorComment), 'odd', 'odd-length text padded with a space')
  t.equal(c.text(CMD.affectedSopInstanceUid), '1.2.3.4')
  t.equal(c.text(CMD.moveOriginatorAe), undefined)
})

t.test('malformed command sets are refused with DIMSE_COMMAND_MALFORMED', async (t) => {
  const ok = encodeCommand(
    new Map<number, string | number>([
      [CMD.commandField, COMMAND_FIELD.cEchoRq],
      [CMD.messageId, 1],
      [CMD.dataSetType, NO_DATASET],
    ]),
  )
  t.equal(decodeCommand(ok).field, COMMAND_FIELD.cEchoRq)
  for (const cut of [3, 11, ok.length - 1])
    t.throws(() => decodeCommand(ok.subarray(0, cut)), { name: 'DimseError', code: 'DIMSE_COMMAND_MALFORMED' }, `cut at ${cut}`)
  const other = Buffer.from(ok)
  other.writeUInt16LE(0x0008, 12)
  t.throws(() => decodeCommand(other), { code: 'DIMSE_COMMAND_MALFORMED' }, 'an element outside group 0000')
  const noField = encodeCommand(new Map<number, string | number>([[CMD.dataSetType, NO_DATASET]]))
  t.throws(() => decodeCommand(noField), { code: 'DIMSE_COMMAND_MALFORMED' }, 'no Command Field')
  const huge = Buffer.from(ok)
  huge.writeUInt32LE(0xfffffff0, 16)
  t.throws(() => decodeCommand(huge), { code: 'DIMSE_COMMAND_MALFORMED' }, 'a length past the end')
})

t.test('file meta around received dataset bytes: read back by the Part 10 parser, dataset bytes untouched (PS3.10 7.1)', async (t) => {
  // A tiny explicit VR LE dataset (a Basic Text SR: no pixels): SOP Class, SOP Instance, Study/Series UIDs, a private tag.
  const el = (g: number, e: number, vr: string, v: string): Buffer => {
    const val = Buffer.from(v.length % 2 === 0 ? v : v + '\0', 'latin1')
    const h = Buffer.alloc(8)
    h.writeUInt16LE(g)
    h.writeUInt16LE(e, 2)
    h.write(vr, 4, 'latin1')
    h.writeUInt16LE(val.length, 6)
    return Buffer.concat([h, val])
  }
  const ds = Buffer.concat([
    el(0x0008, 0x0016, 'UI', '1.2.840.10008.5.1.4.1.1.88.11'),
    el(0x0008, 0x0018, 'UI', '1.2.3.4.5'),
    el(0x0009, 0x0010, 'LO', 'ACME 1.0'),
    el(0x0020, 0x000d, 'UI', '1.2.3'),
    el(0x0020, 0x000e, 'UI', '1.2.3.1'),
  ])
  const meta = encodeFileMeta({
    sopClassUid: '1.2.840.10008.5.1.4.1.1.88.11',
    sopInstanceUid: '1.2.3.4.5',
    transferSyntaxUid: '1.2.840.10008.1.2.1',
    implementationClassUid: '2.25.1',
    implementationVersionName: 'RADCHAIN_0_1',
    sourceAe: 'STORESCU',
  })
  const file = Buffer.concat([meta, ds])
  t.equal(file.subarray(128, 132).toString('latin1'), 'DICM')
  t.same(file.subarray(meta.length), ds, 'the dataset follows the meta byte for byte')
  const inst = parseDicom(file)
  t.equal(firstString(inst.meta, TAG.TransferSyntaxUID), '1.2.840.10008.1.2.1')
  t.equal(firstString(inst.meta, TAG.MediaStorageSOPInstanceUID), '1.2.3.4.5')
  t.equal(firstString(inst.dataset, TAG.SOPInstanceUID), '1.2.3.4.5')
  t.equal(firstString(inst.dataset, '00090010'), 'ACME 1.0', 'the private creator read back')
})
