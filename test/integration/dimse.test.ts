// The daemon as a DICOM SCP (README "DICOM networking (DIMSE)"), against
// dcmtk's echoscu and storescu and against hand-built associations on a raw
// socket: C-ECHO, C-STORE of many files over storescu's ~128 presentation
// contexts, registration on the ledger, pixels read back through WADO-RS,
// duplicates, refusals, a truncated dataset, an aborted association and a
// kill -9 right after a C-STORE success.
import t, { type Test } from 'tap'
import { execFile } from 'node:child_process'
import { connect, type Socket } from 'node:net'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { DATADIR_FILES, initDataDir } from '../../src/node/index.js'
import type { ApiClient, DaemonInfo } from '../../src/api/index.js'
import { DaemonProcess } from '../../src/devnet/index.js'
import {
  DimseServer,
  APPLICATION_CONTEXT,
  CMD,
  COMMAND_FIELD,
  PC_RESULT,
  PDU_TYPE,
  PduReader,
  REJECT,
  decodeCommand,
  decodePdu,
  encodeCommand,
  encodePdu,
  fragmentPData,
  type AssociateAc,
  type Pdu,
  type ProposedContext,
} from '../../src/dimse/index.js'
import { TAG, firstString, generateCtStudy, instanceDigestOfBytes, parseDicom } from '../../src/study/index.js'
import { createLogger, sleep } from '../../src/util/index.js'
import { splitMultipart } from '../helpers/multipart.js'
import { runCli } from './helpers/cli.js'

const exec = promisify(execFile)
const SAMPLE_DIR = new URL('../vectors/dicom/study-77654033/', import.meta.url)
const CT_STORAGE = '1.2.840.10008.5.1.4.1.1.2'
const EXPLICIT_LE = '1.2.840.10008.1.2.1'
const STABLE_SECONDS = 3

const work = await mkdtemp(join(tmpdir(), 'radchain-dimse-'))
const dir = join(work, 'node')
const daemon = new DaemonProcess(dir)
t.teardown(async () => {
  await daemon.kill()
  await rm(work, { recursive: true, force: true })
})

await initDataDir({
  dir,
  dev: true,
  apiPort: 0,
  scrypt: { N: 1024, r: 8, p: 1 },
  params: { blockIntervalMs: 300, chunkSize: 64 * 1024 },
  config: {
    dicomweb: { stableSeconds: STABLE_SECONDS },
    dimse: { enabled: true, listen: '127.0.0.1:0', aeTitle: 'RADCHAIN', peers: [{ aeTitle: 'ECHOSCU', host: '127.0.0.1', port: 104 }] },
  },
})
// The other peers through the CLI, as an operator adds them (the running daemon reads them at the next association).
for (const ae of ['STORESCU', 'RAWSCU']) {
  const r = await runCli(['dimse', 'peer', 'add', ae, 'localhost', '11112', '--node', dir])
  if (r.code !== 0) throw new Error(`dimse peer add: ${r.stderr}`)
}

let client: ApiClient = await daemon.start()
const info = async (): Promise<DaemonInfo> => JSON.parse(await readFile(join(dir, DATADIR_FILES.daemon), 'utf8')) as DaemonInfo
let port = Number(/:(\d+)$/.exec((await info()).dimse ?? '')?.[1])
let dicomweb = (await info()).dicomweb as string
const token = (
  JSON.parse((await runCli(['dicomweb', 'token', 'create', '--name', 'check', '--scope', 'read', '--node', dir, '--json'])).stdout) as { token: string }
).token

const sampleFiles = (await readdir(SAMPLE_DIR, { recursive: true }))
  .map(String)
  .filter((f) => /\/\d+$/.test(f))
  .sort()
const samplePaths = sampleFiles.map((f) => join(SAMPLE_DIR.pathname, f))
const ct = await generateCtStudy({ slices: 12, rows: 128, cols: 128, out: join(work, 'ct'), seed: 16 })
const allPaths = [...samplePaths, ...ct.files]
const allBytes = await Promise.all(allPaths.map((p) => readFile(p)))
const studyOf = (b: Uint8Array): string => firstString(parseDicom(b).dataset, TAG.StudyInstanceUID) as string
const studyUids = [...new Set(allBytes.map(studyOf))]

/** The dataset of a Part 10 file: what follows the file meta group. */
function datasetOf(file: Uint8Array): Buffer {
  const b = Buffer.from(file)
  return b.subarray(132 + 12 + b.readUInt32LE(140))
}

const digests = (parts: Uint8Array[]): string[] => parts.map((p) => instanceDigestOfBytes(p).digest).sort()

async function wado(study: string): Promise<Buffer[]> {
  const res = await fetch(`${dicomweb}/studies/${study}`, { headers: { authorization: `Bearer ${token}` } })
  if (res.status !== 200) throw new Error(`WADO-RS ${res.status}`)
  return splitMultipart(Buffer.from(await res.arrayBuffer()), res.headers.get('content-type') ?? '')
}

async function qidoInstances(study: string): Promise<number> {
  const res = await fetch(`${dicomweb}/studies/${study}/instances`, { headers: { authorization: `Bearer ${token}` } })
  if (res.status === 204) return 0
  return ((await res.json()) as unknown[]).length
}

/** Waits until `n` studies are registered (or the deadline), returns how many there are. */
async function registered(n: number, ms = 40_000): Promise<number> {
  const deadline = Date.now() + ms
  let got = (await client.studies()).length
  while (got < n && Date.now() < deadline) {
    await sleep(250)
    got = (await client.studies()).length
  }
  return got
}

/** Runs a dcmtk tool; its exit code and all it printed. */
async function dcmtk(tool: string, args: string[]): Promise<{ code: number; out: string }> {
  try {
    const r = await exec(tool, args, { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 })
    return { code: 0, out: r.stdout + r.stderr }
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string }
    return { code: typeof e.code === 'number' ? e.code : -1, out: (e.stdout ?? '') + (e.stderr ?? '') }
  }
}

/** A hand-built association: PDUs written and read on a raw socket. */
class RawScu {
  readonly #s: Socket
  readonly #reader = new PduReader(1 << 22)
  readonly #queue: Pdu[] = []
  #wake: (() => void) | undefined
  #closed = false

  private constructor(s: Socket) {
    this.#s = s
    s.on('data', (c: Buffer) => {
      this.#reader.push(c)
      for (let raw = this.#reader.next(); raw !== undefined; raw = this.#reader.next()) this.#queue.push(decodePdu(raw.type, raw.body))
      this.#wake?.()
    })
    s.on('close', () => {
      this.#closed = true
      this.#wake?.()
    })
    s.on('error', () => undefined)
  }

  static async open(calling: string, contexts: ProposedContext[], to = port): Promise<{ scu: RawScu; answer: Pdu }> {
    const s = connect(to, '127.0.0.1')
    await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject))
    const scu = new RawScu(s)
    scu.send(
      encodePdu({
        type: PDU_TYPE.associateRq,
        protocolVersion: 1,
        calledAe: 'RADCHAIN',
        callingAe: calling,
        applicationContext: APPLICATION_CONTEXT,
        contexts,
        userInfo: { maxPduLength: 16384, implementationClassUid: '1.2.3.4.5.6', implementationVersionName: 'RAWSCU' },
      }),
    )
    return { scu, answer: await scu.next() }
  }

  send(b: Uint8Array): void {
    this.#s.write(b)
  }

  /** The next PDU, or an A-ABORT-like marker when the connection closed without one. */
  async next(ms = 20_000): Promise<Pdu> {
    const deadline = Date.now() + ms
    while (this.#queue.length === 0 && !this.#closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        this.#wake = resolve
        setTimeout(resolve, 200)
      })
    }
    const p = this.#queue.shift()
    if (p !== undefined) return p
    if (this.#closed) return { type: PDU_TYPE.releaseRp }
    throw new Error('no PDU in time')
  }

  /** Sends a C-STORE-RQ (command, then the dataset in fragments; `cut`: only half of it, not flagged last) and, unless cut, reads its status. */
  async store(contextId: number, file: Uint8Array, messageId: number, opts: { dataset?: Uint8Array; cut?: boolean } = {}): Promise<number | undefined> {
    const ds = parseDicom(file).dataset
    const cmd = encodeCommand(
      new Map<number, string | number>([
        [CMD.affectedSopClassUid, firstString(ds, TAG.SOPClassUID) as string],
        [CMD.commandField, COMMAND_FIELD.cStoreRq],
        [CMD.messageId, messageId],
        [CMD.priority, 0],
        [CMD.dataSetType, 0],
        [CMD.affectedSopInstanceUid, firstString(ds, TAG.SOPInstanceUID) as string],
      ]),
    )
    for (const p of fragmentPData(contextId, true, cmd, 16384)) this.send(p)
    const data = opts.dataset ?? datasetOf(file)
    if (opts.cut === true) {
      // Half the dataset, in a fragment that does not say it is the last.
      this.send(encodePdu({ type: PDU_TYPE.pData, pdvs: [{ contextId, command: false, last: false, data: data.subarray(0, data.length >> 1) }] }))
      return undefined
    }
    for (const p of fragmentPData(contextId, false, data, 16384)) this.send(p)
    const rsp = await this.next()
    if (rsp.type !== PDU_TYPE.pData) throw new Error(`expected a C-STORE-RSP, got PDU type ${rsp.type}`)
    const c = decodeCommand(Buffer.concat(rsp.pdvs.map((v) => v.data)))
    if (c.field !== COMMAND_FIELD.cStoreRsp) throw new Error('not a C-STORE-RSP')
    return c.us(CMD.status)
  }

  async release(): Promise<Pdu> {
    this.send(encodePdu({ type: PDU_TYPE.releaseRq }))
    const p = await this.next()
    this.#s.destroy()
    return p
  }

  abort(): void {
    this.#s.end(encodePdu({ type: PDU_TYPE.abort, source: 0, reason: 0 }))
  }
}

/** A DimseServer in this process on a free port (stopped at the test's end) over a backend that stores nothing: for the listener's own bounds. */
async function inProcessServer(
  t: Test,
  opts: Partial<ConstructorParameters<typeof DimseServer>[0]>,
  store: { store: () => Promise<{ status: number }> } = { store: async () => ({ status: 0 }) },
): Promise<DimseServer> {
  const server = new DimseServer(
    {
      host: '127.0.0.1',
      port: 0,
      aeTitle: 'RADCHAIN',
      maxInstanceBytes: 1 << 20,
      implementationClassUid: '2.25.1',
      implementationVersionName: 'TEST',
      logger: createLogger({ level: 'silent' }),
      ...opts,
    },
    {
      backend: {
        admit: async () => true,
        openStore: () => store,
        find: async () => ({ ok: true, matches: [] }),
        retrieve: async () => ({ ok: false, status: 0xc000, comment: 'none' }),
        destination: async () => undefined,
      },
    },
  )
  await server.start()
  t.teardown(() => server.stop())
  return server
}

const ctContext: ProposedContext = { id: 1, abstractSyntax: CT_STORAGE, transferSyntaxes: [EXPLICIT_LE] }

t.test('C-ECHO with echoscu from a known peer', async (t) => {
  const r = await dcmtk('echoscu', ['-v', '-aet', 'ECHOSCU', '-aec', 'RADCHAIN', '127.0.0.1', String(port)])
  t.equal(r.code, 0, 'echoscu exits 0', { output: r.out })
  t.match(r.out, /Received Echo Response \(Success\)/)
})

t.test('refusals: an unknown calling AE, a wrong called AE (PS3.8 Table 9-21)', async (t) => {
  const unknown = await dcmtk('echoscu', ['-v', '-aet', 'STRANGER', '-aec', 'RADCHAIN', '127.0.0.1', String(port)])
  t.not(unknown.code, 0, 'echoscu fails')
  t.match(unknown.out, /Association Rejected/)
  t.match(unknown.out, /Calling AE Title Not Recognized/)
  const called = await dcmtk('echoscu', ['-v', '-aet', 'ECHOSCU', '-aec', 'SOMEONE', '127.0.0.1', String(port)])
  t.not(called.code, 0)
  t.match(called.out, /Called AE Title Not Recognized/)
  const store = await dcmtk('storescu', ['-aet', 'STRANGER', '-aec', 'RADCHAIN', '127.0.0.1', String(port), samplePaths[0] as string])
  t.not(store.code, 0, 'storescu from an unknown AE fails')
  t.match(store.out, /Association Rejected|Calling AE Title Not Recognized/)
  const raw = await RawScu.open('NOBODY', [ctContext])
  t.same(raw.answer, { type: PDU_TYPE.associateRj, result: REJECT.resultPermanent, source: REJECT.sourceUser, reason: REJECT.userCallingAeNotRecognized })
})

t.test('an unsupported SOP class or transfer syntax is refused for its context, the others accepted', async (t) => {
  const { scu, answer } = await RawScu.open('RAWSCU', [
    { id: 1, abstractSyntax: '1.2.840.10008.5.1.4.1.2.2.3', transferSyntaxes: [EXPLICIT_LE] }, // Study Root C-GET: not offered yet
    { id: 3, abstractSyntax: CT_STORAGE, transferSyntaxes: ['1.2.840.10008.1.2.2'] }, // explicit big endian only
    { id: 5, abstractSyntax: '1.2.3.4.5.6.7', transferSyntaxes: [EXPLICIT_LE] }, // made up
    { id: 7, abstractSyntax: '1.2.840.10008.5.1.4.1.1.481.3', transferSyntaxes: ['1.2.840.10008.1.2', EXPLICIT_LE] }, // RT Structure Set
  ])
  t.equal(answer.type, PDU_TYPE.associateAc)
  t.same(
    (answer as AssociateAc).contexts.map((c) => [c.id, c.result]),
    [
      [1, PC_RESULT.abstractSyntaxNotSupported],
      [3, PC_RESULT.transferSyntaxesNotSupported],
      [5, PC_RESULT.abstractSyntaxNotSupported],
      [7, PC_RESULT.acceptance],
    ],
  )
  t.equal((answer as AssociateAc).contexts[3]?.transferSyntax, EXPLICIT_LE, 'explicit VR little endian preferred')
  t.equal((await scu.release()).type, PDU_TYPE.releaseRp)
})

t.test('a presentation context ID proposed twice is answered once, for its first proposal', async (t) => {
  const { scu, answer } = await RawScu.open('RAWSCU', [
    { id: 1, abstractSyntax: CT_STORAGE, transferSyntaxes: [EXPLICIT_LE] },
    { id: 1, abstractSyntax: '1.2.840.10008.5.1.4.1.2.2.1', transferSyntaxes: ['1.2.840.10008.1.2.2'] }, // Study Root FIND, big endian
    { id: 3, abstractSyntax: CT_STORAGE, transferSyntaxes: [EXPLICIT_LE] },
  ])
  t.equal(answer.type, PDU_TYPE.associateAc)
  t.same(
    (answer as AssociateAc).contexts.map((c) => [c.id, c.result]),
    [
      [1, PC_RESULT.acceptance],
      [3, PC_RESULT.acceptance],
    ],
    'one answer per ID',
  )
  t.equal((await scu.release()).type, PDU_TYPE.releaseRp)
})

t.test('storescu of two real studies and a synthetic one over its default presentation contexts: stored as sent, then registered', async (t) => {
  const r = await dcmtk('storescu', ['-v', '-aet', 'STORESCU', '-aec', 'RADCHAIN', '127.0.0.1', String(port), ...allPaths])
  t.equal(r.code, 0, 'storescu exits 0', { output: r.out.slice(-2000) })
  t.notMatch(r.out, /Store Failed|Status: [^S]/, 'no failed store')
  t.equal((r.out.match(/Received Store Response \(Success\)/g) ?? []).length, allPaths.length, 'one success per file')
  // While the studies wait in the spool, WADO-RS serves the files as received: the datasets are the bytes storescu sent.
  for (const uid of studyUids) {
    const parts = await wado(uid)
    const mine = allBytes.filter((b) => studyOf(b) === uid)
    t.equal(parts.length, mine.length, 'every instance of the study in the spool')
    const sent = new Set(mine.map((b) => datasetOf(b).toString('hex')))
    t.ok(
      parts.every((p) => sent.has(datasetOf(p).toString('hex'))),
      'each dataset byte-identical to a file sent (private tags and VRs as they were)',
    )
  }
  t.equal(await registered(studyUids.length), studyUids.length, 'each study registered on the ledger')
  const ls = await runCli(['study', 'ls', '--node', dir, '--json'])
  t.equal(ls.code, 0)
  t.equal((JSON.parse(ls.stdout) as unknown[]).length, studyUids.length, '`study ls` lists them')
  // Once final, WADO-RS decrypts them from their chunks: the pixels are the ones sent.
  const deadline = Date.now() + 30_000
  const spool = join(dir, DATADIR_FILES.dicomwebSpool)
  while (Date.now() < deadline && (await readdir(spool, { recursive: true })).some((f) => String(f).endsWith('.dcm'))) await sleep(200)
  for (const uid of studyUids) t.same(digests(await wado(uid)), digests(allBytes.filter((b) => studyOf(b) === uid)), 'pixels identical (digests)')
})

t.test('the same files again: acknowledged, not registered twice', async (t) => {
  const before = (await client.studies()).length
  const r = await dcmtk('storescu', ['-aet', 'STORESCU', '-aec', 'RADCHAIN', '127.0.0.1', String(port), ...allPaths])
  t.equal(r.code, 0, 'storescu exits 0', { output: r.out.slice(-2000) })
  await sleep(STABLE_SECONDS * 1000 + 3000)
  t.equal((await client.studies()).length, before, 'no new registration')
  const log = await readFile(join(dir, 'daemon.log'), 'utf8')
  t.match(log, new RegExp(`"calling":"STORESCU".*"stored":${allPaths.length},"duplicates":${allPaths.length}`), 'the association logged with its duplicates')
})

t.test('a truncated dataset gets a failure status; nothing is registered', async (t) => {
  const extra = await generateCtStudy({ slices: 1, rows: 64, cols: 64, out: join(work, 'ct-trunc'), seed: 3 })
  const file = await readFile(extra.files[0] as string)
  const before = (await client.studies()).length
  const { scu, answer } = await RawScu.open('RAWSCU', [ctContext])
  t.equal(answer.type, PDU_TYPE.associateAc)
  const ds = datasetOf(file)
  const status = await scu.store(1, file, 1, { dataset: ds.subarray(0, ds.length - 1000) })
  t.equal(status, 0xc000, 'Cannot understand (PS3.4 B.2.3)')
  t.equal((await scu.release()).type, PDU_TYPE.releaseRp)
  await sleep(STABLE_SECONDS * 1000 + 2000)
  t.equal((await client.studies()).length, before, 'no registration')
  t.equal(await qidoInstances(extra.studyInstanceUid), 0, 'nothing of it indexed')
})

t.test('an association aborted mid-study: what was answered is registered, the instance cut short is not', async (t) => {
  const partial = await generateCtStudy({ slices: 3, rows: 64, cols: 64, out: join(work, 'ct-abort'), seed: 4 })
  const files = await Promise.all(partial.files.map((f) => readFile(f)))
  const before = (await client.studies()).length
  const { scu } = await RawScu.open('RAWSCU', [ctContext])
  t.equal(await scu.store(1, files[0] as Buffer, 1), 0)
  t.equal(await scu.store(1, files[1] as Buffer, 2), 0)
  await scu.store(1, files[2] as Buffer, 3, { cut: true })
  scu.abort()
  t.equal(await registered(before + 1), before + 1, 'the study registered')
  await sleep(STABLE_SECONDS * 1000 + 1000)
  t.equal((await client.studies()).length, before + 1, 'once')
  t.equal(await qidoInstances(partial.studyInstanceUid), 2, 'with the two answered instances only')
  const log = await readFile(join(dir, 'daemon.log'), 'utf8')
  t.match(log, /"calling":"RAWSCU".*"stored":2,.*"end":"aborted by the peer, a message cut short"/, 'the abort logged')
})

t.test('kill -9 right after a C-STORE success: the instance is registered after the restart', async (t) => {
  const one = await generateCtStudy({ slices: 1, rows: 64, cols: 64, out: join(work, 'ct-kill'), seed: 5 })
  const file = await readFile(one.files[0] as string)
  const before = (await client.studies()).length
  const { scu } = await RawScu.open('RAWSCU', [ctContext])
  t.equal(await scu.store(1, file, 1), 0, 'C-STORE success')
  await daemon.kill()
  client = await daemon.start()
  port = Number(/:(\d+)$/.exec((await info()).dimse ?? '')?.[1])
  dicomweb = (await info()).dicomweb as string
  t.equal(await registered(before + 1), before + 1, 'registered after the restart')
  t.same(digests(await wado(one.studyInstanceUid)), digests([file]), 'with its pixels')
})

t.test('the DIMSE log lines name no patient and no UID of the datasets', async (t) => {
  const log = await readFile(join(dir, 'daemon.log'), 'utf8')
  const lines = log.split('\n').filter((l) => l.includes('"mod":"dimse"'))
  t.ok(lines.length >= 5, 'one line per association and refusal')
  const secrets = new Set<string>()
  for (const b of allBytes) {
    const ds = parseDicom(b).dataset
    for (const tag of [TAG.StudyInstanceUID, TAG.SOPInstanceUID, TAG.SeriesInstanceUID, '00100010', '00100020'])
      for (const v of [firstString(ds, tag)]) if (v !== undefined && v.length > 3) secrets.add(v)
  }
  const leaked = [...secrets].filter((s) => lines.some((l) => l.includes(s)))
  t.same(leaked, [], 'none found')
  const status = await runCli(['status', '--node', dir])
  t.match(status.stdout, new RegExp(`dimse\\s+RADCHAIN@127\\.0\\.0\\.1:${port}`), '`radchain status` shows the listener')
})

t.test('empty data fragments count against the largest dataset: a C-STORE of nothing but them is answered Out of Resources', async (t) => {
  let stored = 0
  const server = await inProcessServer(
    t,
    { maxInstanceBytes: 64 * 1024 },
    {
      store: async () => {
        stored++
        return { status: 0 }
      },
    },
  )
  const { scu, answer } = await RawScu.open('RAWSCU', [ctContext], server.port)
  t.equal(answer.type, PDU_TYPE.associateAc)
  const cmd = encodeCommand(
    new Map<number, string | number>([
      [CMD.affectedSopClassUid, CT_STORAGE],
      [CMD.commandField, COMMAND_FIELD.cStoreRq],
      [CMD.messageId, 1],
      [CMD.priority, 0],
      [CMD.dataSetType, 0],
      [CMD.affectedSopInstanceUid, '2.25.42'],
    ]),
  )
  for (const p of fragmentPData(1, true, cmd, 16384)) scu.send(p)
  // 20,000 fragments of no bytes (each PDV item 6 bytes on the wire: 120,000 bytes, above the 64 KiB limit), then the last.
  const empty = { contextId: 1, command: false, last: false, data: new Uint8Array(0) }
  for (let i = 0; i < 20; i++) scu.send(encodePdu({ type: PDU_TYPE.pData, pdvs: Array.from({ length: 1000 }, () => empty) }))
  scu.send(encodePdu({ type: PDU_TYPE.pData, pdvs: [{ contextId: 1, command: false, last: true, data: new Uint8Array(2) }] }))
  const rsp = await scu.next()
  t.equal(rsp.type, PDU_TYPE.pData, 'answered')
  const c = decodeCommand(Buffer.concat(rsp.type === PDU_TYPE.pData ? rsp.pdvs.map((v) => v.data) : []))
  t.equal(c.us(CMD.status), 0xa700, 'Out of Resources: the fragments counted, not taken as an empty dataset')
  t.equal(stored, 0, 'nothing handed to the store')
  t.equal((await scu.release()).type, PDU_TYPE.releaseRp)
})

t.test('connections that trickle bytes and never associate take no association slot, and are closed at ARTIM', async (t) => {
  const server = await inProcessServer(t, { maxInstanceBytes: 1 << 20, maxAssociations: 2, artimMs: 1500 })
  // Four connections each send an A-ASSOCIATE-RQ header one byte every 300 ms (an inactivity timer would never fire).
  const header = Buffer.from([PDU_TYPE.associateRq, 0, 0, 0, 0x10, 0])
  const socks = await Promise.all(
    [0, 1, 2, 3].map(async () => {
      const s = connect(server.port, '127.0.0.1')
      await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject))
      s.on('error', () => undefined)
      let i = 0
      const drip = setInterval(() => {
        if (!s.destroyed) s.write(header.subarray(i % header.length, (i % header.length) + 1))
        i++
      }, 300)
      const closed = new Promise<number>((resolve) => s.once('close', () => resolve(Date.now())))
      return { s, drip, closed }
    }),
  )
  t.teardown(() => socks.forEach((x) => (clearInterval(x.drip), x.s.destroy())))
  const opened = Date.now()
  const echo = await dcmtk('echoscu', ['-aec', 'RADCHAIN', '127.0.0.1', String(server.port)])
  t.equal(echo.code, 0, 'echoscu is answered beside them (they hold no slot)', { output: echo.out })
  const closedAt = await Promise.race([Promise.all(socks.map((x) => x.closed)), sleep(10_000).then(() => undefined)])
  t.ok(closedAt !== undefined, 'every trickling connection is closed')
  t.ok(
    (closedAt ?? []).every((at) => at - opened < 6_000),
    'within a few seconds of ARTIM (1.5 s), though bytes kept coming',
  )
})

t.test('DICOM TLS (PS3.15 B.1): echoscu over TLS is answered, a plain association on the TLS port is not', async (t) => {
  const key = join(work, 'tls.key')
  const cert = join(work, 'tls.crt')
  await exec('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'])
  const server = await inProcessServer(t, { tls: { cert: await readFile(cert), key: await readFile(key) }, maxInstanceBytes: 1 << 20 })
  const tls = await dcmtk('echoscu', ['-v', '+tla', '+cf', cert, '-aec', 'RADCHAIN', '127.0.0.1', String(server.port)])
  t.equal(tls.code, 0, 'echoscu over TLS exits 0', { output: tls.out })
  t.match(tls.out, /Received Echo Response \(Success\)/)
  const plain = await dcmtk('echoscu', ['-aec', 'RADCHAIN', '127.0.0.1', String(server.port)])
  t.not(plain.code, 0, 'plain DICOM on the TLS port fails')
})
