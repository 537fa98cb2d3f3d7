import t from 'tap'
import { randomBytes } from 'node:crypto'
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { registerStudyTx, signTx, type GenesisJSON } from '../../src/chain/index.js'
import { Ed25519Signer, x25519FromPrivate } from '../../src/crypto/index.js'
import { initDataDir } from '../../src/node/index.js'
import { TAG, firstString, readDicom } from '../../src/study/index.js'
import { isJobOfKind, type AuditEventView, type StudyJobView, type StudyView } from '../../src/api/index.js'
import { toHex } from '../../src/util/index.js'
import { DaemonProcess, repoRoot } from '../../src/devnet/index.js'
import { assertOneLineError, jsonOf, runCli } from './helpers/cli.js'

type Added = { studyId: string; tx: string; height: number; instances: number; extends: string | null }

t.test(
  'study versions: add, add --extends, the chain on the ledger, in study show and in the audit; refusals with their codes; an erasure in the middle',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'radchain-versions-'))
    const node = join(dir, 'node')
    const daemon = new DaemonProcess(node)
    t.teardown(async () => {
      await daemon.kill()
      await rm(dir, { recursive: true, force: true })
    })
    // One daemon; a second organization on the ledger (a member, never started) whose study the test registers with its key.
    await initDataDir({
      dir: node,
      dev: true,
      apiPort: 0,
      scrypt: { N: 1024, r: 8, p: 1 },
      params: { blockIntervalMs: 500, chunkSize: 4096, replicationFactor: 1 },
    })
    const org2 = new Ed25519Signer(new Uint8Array(randomBytes(32)))
    const genesis = JSON.parse(await readFile(join(node, 'genesis.json'), 'utf8')) as GenesisJSON
    const withOrg2 = {
      ...genesis,
      orgs: [
        ...genesis.orgs,
        {
          id: 'org2',
          name: 'org2',
          role: 'member',
          signKey: toHex(org2.publicKey),
          encKey: toHex(x25519FromPrivate(new Uint8Array(randomBytes(32))).publicKey),
          addrs: [],
        },
      ],
    }
    await writeFile(join(node, 'genesis.json'), JSON.stringify(withOrg2, null, 2) + '\n')
    const client = await daemon.start()
    const cli = (...args: string[]): ReturnType<typeof runCli> => runCli([...args, '--node', node], { timeoutMs: 60_000 })

    // The CR study of the sample set, in two parts: two instances first, the third later.
    const vectors = join(repoRoot(), 'test/vectors/dicom/study-77654033')
    const first = join(dir, 'first')
    const later = join(dir, 'later')
    await mkdir(first)
    await cp(join(vectors, 'CR1'), join(first, 'CR1'), { recursive: true })
    await cp(join(vectors, 'CR2'), join(first, 'CR2'), { recursive: true })
    await cp(join(vectors, 'CR3'), later, { recursive: true })
    const studyUids = [
      firstString((await readDicom(join(vectors, 'CR1/6154'))).dataset, TAG.StudyInstanceUID),
      firstString((await readDicom(join(vectors, 'CT2/17106'))).dataset, TAG.StudyInstanceUID),
    ]

    const a1 = await cli('study', 'add', first, '--json')
    t.equal(a1.code, 0, a1.stderr)
    const [v1] = jsonOf<Added[]>(t, a1)
    if (v1 === undefined) throw new Error('no study registered')
    t.equal(v1.instances, 2)
    t.equal(v1.extends, null, 'the first version extends nothing')

    const a2 = await cli('study', 'add', later, '--extends', v1.studyId.toUpperCase(), '--json')
    t.equal(a2.code, 0, a2.stderr)
    const [v2] = jsonOf<Added[]>(t, a2)
    if (v2 === undefined) throw new Error('no new version registered')
    t.equal(v2.instances, 1)
    t.equal(v2.extends, v1.studyId, 'registered as a new version of the first')

    // The ledger: the registration names the earlier version and its content root.
    const show1 = jsonOf<StudyView>(t, await cli('study', 'show', v1.studyId, '--json'))
    const reg = await client.tx(v2.tx)
    t.equal(reg.status, 'final')
    t.same(
      (reg.tx as { payload: { extends: unknown } }).payload.extends,
      { studyId: v1.studyId, contentRoot: show1.contentRoot },
      'on the ledger: the id and content root of the first version',
    )
    t.equal(((await client.tx(v1.tx)).tx as { payload: { extends: unknown } }).payload.extends, null, 'the first registration extends nothing')

    // study show, both ways.
    const show2 = jsonOf<StudyView>(t, await cli('study', 'show', v2.studyId, '--json'))
    const chainOf = (s: StudyView): [string, boolean, boolean][] => (s.versions ?? []).map((v) => [v.studyId, v.self, v.erased])
    t.same([show1.extends, show1.extendedBy], [null, v2.studyId], 'the first: extends nothing, extended by the second')
    t.same([show2.extends, show2.extendedBy], [v1.studyId, null], 'the second: extends the first, extended by nothing')
    t.same(chainOf(show1), [
      [v1.studyId, true, false],
      [v2.studyId, false, false],
    ])
    t.same(chainOf(show2), [
      [v1.studyId, false, false],
      [v2.studyId, true, false],
    ])
    t.same(
      show2.versions?.map((v) => v.height),
      [v1.height, v2.height],
    )
    const text = await cli('study', 'show', v2.studyId)
    t.equal(text.code, 0, text.stderr)
    t.match(text.stdout, new RegExp(`extends\\s+${v1.studyId}`))
    t.match(
      text.stdout,
      new RegExp(`versions\\s+1\\. ${v1.studyId}  height ${v1.height}\\n\\s+2\\. ${v2.studyId}  height ${v2.height}  \\(this study\\)`),
      'the chain, oldest first, this study marked',
    )
    const ls = await cli('study', 'ls')
    t.match(ls.stdout, new RegExp(`${v1.studyId} .* newer version ${v2.studyId.slice(0, 8)}…`), 'study ls: the first has a newer version')
    t.match(ls.stdout, new RegExp(`${v2.studyId} .* extends ${v1.studyId.slice(0, 8)}…`), 'study ls: the second extends the first')

    // The audit, both ways.
    const audit1 = jsonOf<AuditEventView[]>(t, await cli('audit', v1.studyId, '--json'))
    const audit2 = jsonOf<AuditEventView[]>(t, await cli('audit', v2.studyId, '--json'))
    t.same(
      audit1.map((e) => [e.type, e.tx, e.extendedBy ?? null]),
      [
        ['study.register', v1.tx, null],
        ['study.register', v2.tx, v2.studyId],
      ],
      "the first version's trail: its registration, then the registration that extended it",
    )
    t.same(
      audit2.map((e) => [e.type, e.tx, (e.detail.extends as { studyId: string } | null)?.studyId ?? null]),
      [['study.register', v2.tx, v1.studyId]],
      "the second version's trail: its registration, naming the first",
    )
    const auditText = await cli('audit', v1.studyId)
    t.match(auditText.stdout, new RegExp(`extended by a new version, ${v2.studyId}`))
    t.match((await cli('audit', v2.studyId)).stdout, new RegExp(`registered, a new version of ${v1.studyId}`))

    const registrations = async (): Promise<number> => (await client.studies()).length
    t.equal(await registrations(), 2)

    // A second version of the first: refused before anything is packed, with the ledger's code.
    const fork = await cli('study', 'add', later, '--extends', v1.studyId, '--json')
    assertOneLineError(t, fork, new RegExp(`has a new version already, ${v2.studyId}`), 'a fork', 'TX_ALREADY_EXTENDED')

    // Two new versions of the second at once: both pass the check at their start, the ledger takes one, the other job fails with its code.
    const jobs = await Promise.all([client.addStudies([later], { extends: v2.studyId }), client.addStudies([later], { extends: v2.studyId })])
    const ended = async (id: string): Promise<StudyJobView> => {
      for (;;) {
        const j = await client.job(id, 5_000)
        if (j.state === 'done' || j.state === 'failed') return j
      }
    }
    const results = await Promise.all(jobs.map(ended))
    const done = results.filter((j) => j.state === 'done')
    const failed = results.filter((j) => j.state === 'failed')
    t.equal(done.length, 1, 'one is registered')
    t.same(
      failed.map((j) => j.error?.code),
      ['TX_ALREADY_EXTENDED'],
      'the other is refused by the ledger',
    )
    t.match(failed[0]?.error?.message ?? '', /registration of the study was refused/, 'at registration, not before')
    const v3 = done[0] !== undefined && isJobOfKind(done[0], 'add') ? done[0].studies[0] : undefined
    if (v3 === undefined) throw new Error('no third version')
    t.equal(v3.extends, v2.studyId)
    t.same(
      chainOf(jsonOf<StudyView>(t, await cli('study', 'show', v1.studyId, '--json'))).map(([id]) => id),
      [v1.studyId, v2.studyId, v3.studyId],
      'three versions, one chain',
    )

    // Files of another DICOM study.
    const other = await cli('study', 'add', join(vectors, 'CT2'), '--extends', v3.studyId, '--json')
    assertOneLineError(t, other, /another DICOM study/, 'another DICOM study', 'DICOM_STUDY_MISMATCH')
    const both = await cli('study', 'add', vectors, '--extends', v3.studyId, '--json')
    assertOneLineError(t, both, /these files hold 2/, 'two DICOM studies', 'DICOM_STUDY_MISMATCH')

    // Another organization's study.
    const theirs = new Uint8Array(randomBytes(16))
    const theirsTx = signTx(org2, {
      chainId: (await client.status()).chainId,
      type: registerStudyTx.name,
      nonce: 0,
      payload: {
        studyId: theirs,
        custodian: 'org2',
        owner: null,
        contentRoot: new Uint8Array(32).fill(1),
        size: 4096 + 16,
        chunkCount: 1,
        chunkSize: 4096,
        studyDigest: new Uint8Array(32).fill(2),
        custodianEnvelope: new Uint8Array(32).fill(3),
        ownerEnvelope: null,
        demographics: new Uint8Array(32).fill(4),
        ownerEphemeral: null,
      },
    })
    await client.submitTx(theirsTx.bytes)
    t.equal((await client.tx(toHex(theirsTx.id), 10_000)).status, 'final', "org2's study is registered")
    const foreign = await cli('study', 'add', later, '--extends', toHex(theirs), '--json')
    assertOneLineError(t, foreign, /kept by org2: only its custodian/, "another organization's study", 'TX_UNAUTHORIZED')
    assertOneLineError(t, await cli('study', 'add', later, '--extends', 'not-a-study', '--json'), /32 hex digits/, 'a malformed id', 'STUDY_BAD_ID')
    t.equal(await registrations(), 4, 'no refused add registered anything')

    // Erasing the middle version: the others still show the whole chain, the erased one marked.
    const erase = await cli('study', 'erase', v2.studyId, '--json')
    t.equal(erase.code, 0, erase.stderr)
    const after1 = jsonOf<StudyView>(t, await cli('study', 'show', v1.studyId, '--json'))
    const after3 = jsonOf<StudyView>(t, await cli('study', 'show', v3.studyId, '--json'))
    const marked: [string, boolean][] = [
      [v1.studyId, false],
      [v2.studyId, true],
      [v3.studyId, false],
    ]
    t.same(
      chainOf(after1).map(([id, , erased]) => [id, erased]),
      marked,
      'from the first: the second erased, in its place',
    )
    t.same(
      chainOf(after3).map(([id, , erased]) => [id, erased]),
      marked,
      'from the third: the same',
    )
    t.equal(after3.extends, v2.studyId, 'the third still names the version it extended')
    t.match((await cli('study', 'show', v3.studyId)).stdout, new RegExp(`2\\. ${v2.studyId}  height ${v2.height}, erased`))
    t.equal(
      jsonOf<{ error: { code: string } }>(t, await cli('study', 'show', v2.studyId, '--json')).error.code,
      'STUDY_ERASED',
      'the erased one itself is gone',
    )
    assertOneLineError(
      t,
      await cli('study', 'add', later, '--extends', v1.studyId, '--json'),
      /erased since/,
      'the erasure does not reopen the chain',
      'TX_ALREADY_EXTENDED',
    )

    // The Study Instance UIDs were compared, never written: not in the log, not in an answer.
    const log = await readFile(join(node, 'daemon.log'), 'utf8')
    for (const uid of studyUids) {
      t.ok(uid !== undefined && uid.length > 10)
      t.notOk(log.includes(uid as string), 'no Study Instance UID in the log')
      t.notOk(other.stdout.includes(uid as string) || other.stderr.includes(uid as string), 'nor in the refusal')
    }
    t.equal(await daemon.stop(), 0)
  },
)
