import type { Command } from 'commander'
import { resolve } from 'node:path'
import type cliProgress from 'cli-progress'
import { RadError, isHex, sleep } from '../../util/index.js'
import type { ApiClient, StudyAddJobView, StudyGetJobView, StudyJobView, StudySendJobView, StudyVersionView } from '../../api/index.js'
import { action, withNodeOpts, type GlobalOpts } from '../program.js'
import { mb, print, table } from '../output.js'
import { clientFor } from '../target.js'
import type { StudyCode } from '../../node/index.js'
import type { TxCode } from '../../chain/index.js'

/** How often a followed job's progress is shown. */
const FOLLOW_MS = 200

/** Polls a job of the given kind until it is done or failed, driving `onUpdate` (for a progress bar). */
async function follow<K extends StudyJobView['kind']>(
  client: ApiClient,
  id: string,
  kind: K,
  onUpdate: (j: Extract<StudyJobView, { kind: K }>) => void,
): Promise<Extract<StudyJobView, { kind: K }>> {
  const { ApiError, isJobOfKind } = await import('../../api/client.js')
  for (;;) {
    // The daemon answers when the job ends or after FOLLOW_MS with its progress: the end is heard of at once.
    const asked = Date.now()
    const job = await client.job(id, FOLLOW_MS)
    if (!isJobOfKind(job, kind)) throw new ApiError('API_BAD_RESPONSE', `job ${id} is a study ${job.kind} job, not a study ${kind} job`, 0)
    onUpdate(job)
    if (job.state === 'failed') throw new RadError(job.error?.code ?? ('STUDY_FAILED' satisfies StudyCode), job.error?.message ?? 'the study job failed')
    if (job.state === 'done') return job
    // A daemon that answered at once (one without ?wait) is not asked again at once.
    await sleep(FOLLOW_MS - (Date.now() - asked))
  }
}

/** A download's progress for its bar: peers sending, rate since `t0`, and the time left at that rate. */
function fetchDetail(j: StudyGetJobView, t0: number): string {
  const s = (Date.now() - t0) / 1000
  const rate = s > 0 ? j.fetch.bytes / 1e6 / s : 0
  const left = rate > 0 ? ((j.chunkCount - j.fetch.done) * (j.fetch.bytes / Math.max(1, j.fetch.done))) / 1e6 / rate : 0
  return `from ${j.fetch.peers} peer(s), ${rate.toFixed(1)} MB/s${left > 0 ? `, ${Math.ceil(left)} s left` : ''}`
}

/** A progress bar on stderr when it is a terminal and output is for people; null otherwise. */
async function progressBar(o: GlobalOpts, format: string): Promise<cliProgress.SingleBar | null> {
  if (process.stderr.isTTY !== true || o.json === true) return null
  const cliProgress = await import('cli-progress')
  return new cliProgress.SingleBar({ format, hideCursor: true, stream: process.stderr }, cliProgress.Presets.shades_classic)
}

/** A study's chain of versions as `study show` prints it: one line each, oldest first. */
function versionLines(versions: readonly StudyVersionView[]): string[] {
  return versions.map((v, i) => `${i + 1}. ${v.studyId}  height ${v.height}${v.erased ? ', erased' : ''}${v.self ? '  (this study)' : ''}`)
}

/** study add | get | ls | show. */
export function registerStudyCommands(program: Command): void {
  const study = program.command('study').description('imaging studies: de-identified, encrypted, chunked and registered on the ledger')

  withNodeOpts(
    study.command('add <paths...>').description('de-identify (DICOM PS3.15 Basic profile), encrypt and register every study found in these files and folders'),
  )
    .option(
      '--skip-bad',
      'leave out files that are not readable DICOM, or that repeat an instance of an earlier file (they are listed with why), instead of refusing',
    )
    .option('--patient <pubkey>', 'the patient who owns the studies: a public key (rcpatient1:...) or the .pub file `radchain patient keygen` wrote')
    .option(
      '--extends <studyId>',
      'the files are later instances of a study this organization registered: register them as its new version (one DICOM study, the same one), naming it on the ledger',
    )
    .action(
      action(async (paths: string[], o: GlobalOpts & { skipBad?: boolean; patient?: string; extends?: string }) => {
        if (o.extends !== undefined && !isHex(o.extends, 16)) throw new RadError<StudyCode>('STUDY_BAD_ID', '--extends takes a study id: 32 hex digits')
        const { encodePatientPublicKey, readPatientPublicKey } = await import('../../crypto/index.js')
        const patient = o.patient === undefined ? undefined : encodePatientPublicKey(await readPatientPublicKey(o.patient))
        const client = await clientFor(o.node)
        // The daemon reads the files: give it absolute paths.
        const id = await client.addStudies(
          paths.map((p) => resolve(p)),
          {
            skipBad: o.skipBad === true,
            ...(patient === undefined ? {} : { patient }),
            ...(o.extends === undefined ? {} : { extends: o.extends.toLowerCase() }),
          },
        )
        const bar = await progressBar(o, '{state} {bar} {value}/{total} files, {mb} MB encrypted')
        let started = false
        let job: StudyAddJobView
        try {
          job = await follow(client, id, 'add', (j) => {
            if (bar === null || j.files === 0) return
            if (!started) bar.start(j.files, 0, { state: j.state, mb: '0.0' })
            started = true
            bar.update(j.filesDone, { state: j.state, mb: mb(j.bytes) })
          })
        } finally {
          bar?.stop()
        }
        // A file's message names it already.
        for (const b of job.bad) process.stderr.write(`radchain: skipped ${b.message.startsWith(b.path) ? b.message : `${b.path}: ${b.message}`} [${b.code}]\n`)
        for (const x of job.ignored) process.stderr.write(`radchain: ignored ${x.path}: ${x.reason}\n`)
        for (const s of job.studies) {
          if (!s.durable) {
            process.stderr.write(
              `radchain: warning: study ${s.studyId} is held by ${s.holders.length} of ${s.target} organizations so far` +
                `${s.unreachable.length > 0 ? ` (unreachable: ${s.unreachable.join(', ')})` : ''}; replication goes on in the background (radchain study show ${s.studyId})\n`,
            )
          }
        }
        print(o.json === true, job.studies, () =>
          job.studies
            .map(
              (s) =>
                `${s.studyId}  ${s.instances} instance(s), ${s.chunks} chunk(s), ${s.size} bytes, final at height ${s.height ?? '?'}${s.owner === null ? '' : `, owned by patient ${s.owner.slice(0, 16)}…`}` +
                (s.extends === null ? '' : `\n  a new version of study ${s.extends}`) +
                `\n  ${s.durable ? 'durable' : 'not yet durable'}: held by ${s.holders.join(', ') || 'nobody yet'} (${s.holders.length} of ${s.target})`,
            )
            .join('\n'),
        )
      }),
    )

  withNodeOpts(
    study
      .command('send <studyId>')
      .description('send a study this node may read (its own, or under an active lease) to a configured DICOM peer with C-STORE (radchain dimse peer ls)'),
  )
    .requiredOption('--to <AE>', 'the AE title of the peer (dimse.peers)')
    .option(
      '--scope <scope>',
      "images: de-identified images; full: demographics and original UIDs restored (needs a full-scope lease for another organization's study)",
      'images',
    )
    .action(
      action(async (studyId: string, o: GlobalOpts & { to: string; scope: string }) => {
        if (o.scope !== 'images' && o.scope !== 'full')
          throw new RadError<StudyCode>('STUDY_BAD_SCOPE', `--scope must be images or full, not ${JSON.stringify(o.scope)}`)
        const client = await clientFor(o.node)
        const id = await client.sendStudy(studyId, { to: o.to, scope: o.scope })
        const bar = await progressBar(o, '{phase} {bar} {value}/{total} {unit}')
        let phase = ''
        let job: StudySendJobView
        try {
          for (;;) {
            const asked = Date.now()
            const j = await client.job(id, FOLLOW_MS)
            if (j.kind !== 'send') throw new RadError('API_BAD_RESPONSE', `job ${id} is a study ${j.kind} job, not a study send job`)
            job = j
            if (bar !== null) {
              const now = j.state === 'fetching' ? 'reading' : 'sending'
              if (now !== phase) {
                if (phase !== '') bar.stop()
                phase = now
                if (now === 'reading') bar.start(Math.max(1, j.chunkCount), 0, { phase: 'reading', unit: 'chunks' })
                else bar.start(Math.max(1, j.total), 0, { phase: 'sending', unit: 'instances' })
              }
              bar.update(now === 'reading' ? j.chunks : j.sent + j.failed + j.warning)
            }
            if (j.state === 'done' || j.state === 'failed') break
            await sleep(FOLLOW_MS - (Date.now() - asked))
          }
        } finally {
          bar?.stop()
        }
        const v = job
        print(o.json === true, v, () =>
          [
            ...v.results.map((r) => `${r.file}  ${r.sopInstanceUid}  ${r.status}${r.ok ? '' : '  FAILED'}${r.comment === undefined ? '' : `  ${r.comment}`}`),
            `study ${v.studyId} (${v.scope}) to ${v.to}: ${v.sent} sent, ${v.warning} with a warning, ${v.failed} failed, of ${v.total}`,
          ].join('\n'),
        )
        if (v.state === 'failed') throw new RadError(v.error?.code ?? ('STUDY_FAILED' satisfies StudyCode), v.error?.message ?? 'the send failed')
        if (v.failed > 0)
          throw new RadError('DIMSE_STORE_FAILED', `${v.to} refused ${v.failed} of ${v.total} instance(s): their C-STORE statuses are listed above`)
      }),
    )

  withNodeOpts(study.command('get <studyId>').description('decrypt a study and write its DICOM files into a new or empty folder'))
    .requiredOption('--out <dir>', 'output folder (created if missing; must be empty)')
    .option('--scope <scope>', 'images: de-identified images; full: demographics and original UIDs restored', 'images')
    .action(
      action(async (studyId: string, o: GlobalOpts & { out: string; scope: string }) => {
        if (o.scope !== 'images' && o.scope !== 'full')
          throw new RadError<StudyCode>('STUDY_BAD_SCOPE', `--scope must be images or full, not ${JSON.stringify(o.scope)}`)
        const client = await clientFor(o.node)
        const out = resolve(o.out)
        const id = await client.getStudy(studyId, { out, scope: o.scope })
        const bar = await progressBar(o, '{phase} {bar} {value}/{total} chunks {detail}')
        let started = false
        let job: StudyGetJobView
        const t0 = Date.now()
        try {
          job = await follow(client, id, 'get', (j) => {
            if (bar === null) return
            if (!started) bar.start(j.chunkCount, 0, { phase: 'fetching  ', detail: '' })
            started = true
            if (j.state === 'fetching') bar.update(j.fetch.done, { phase: 'fetching  ', detail: fetchDetail(j, t0) })
            else bar.update(j.chunks, { phase: 'decrypting', detail: `${j.files} files, ${mb(j.bytes)} MB` })
          })
        } finally {
          bar?.stop()
        }
        print(
          o.json === true,
          { studyId: job.studyId, scope: job.scope, out: job.out, files: job.files, bytes: job.bytes },
          () =>
            `${job.files} DICOM file(s), ${mb(job.bytes)} MB, written to ${job.out} (${job.scope === 'full' ? 'with demographics and original UIDs: patient data; files mode 0600, owned by the user the daemon runs as' : 'de-identified'})\n` +
            'these files are now yours to keep safe: radchain does not track or delete exported copies',
        )
      }),
    )

  withNodeOpts(
    study
      .command('fetch <studyId>')
      .description(
        "bring a study's encrypted chunks into this node's store from its holders, no files written (a prefetch: a later get asks the holders for no chunk)",
      ),
  ).action(
    action(async (studyId: string, o: GlobalOpts) => {
      const client = await clientFor(o.node)
      const id = await client.fetchStudy(studyId)
      const bar = await progressBar(o, 'fetching {bar} {value}/{total} chunks {detail}')
      let started = false
      let job: StudyGetJobView
      const t0 = Date.now()
      try {
        job = await follow(client, id, 'get', (j) => {
          if (bar === null) return
          if (!started) bar.start(j.chunkCount, 0, { detail: '' })
          started = true
          bar.update(j.fetch.done, { detail: fetchDetail(j, t0) })
        })
      } finally {
        bar?.stop()
      }
      const seconds = (Date.now() - t0) / 1000
      print(
        o.json === true,
        { studyId: job.studyId, chunks: job.chunkCount, fetchedBytes: job.fetch.bytes, seconds },
        () =>
          `study ${job.studyId}: all ${job.chunkCount} chunk(s) held by this node; ${mb(job.fetch.bytes)} MB fetched in ${seconds.toFixed(1)} s (encrypted: radchain study get writes the files)`,
      )
    }),
  )

  withNodeOpts(
    study
      .command('erase <studyId>')
      .description("this organization's half of erasing a study it keeps; with the owner's half (radchain patient erase) every node deletes it"),
  ).action(
    action(async (studyId: string, o: GlobalOpts) => {
      const client = await clientFor(o.node)
      const hash = await client.eraseStudy(studyId)
      const st = await client.tx(hash, 30_000)
      if (st.status === 'rejected') throw new RadError(st.error?.code ?? ('TX_REJECTED' satisfies TxCode), st.error?.message ?? 'refused by the ledger')
      print(
        o.json === true,
        { studyId: studyId.toLowerCase(), tx: hash, height: st.height ?? null },
        `erasure of study ${studyId.toLowerCase()} signed by this organization (final at height ${st.height ?? '?'}); it takes effect once the owner signs too, if the study has one`,
      )
    }),
  )

  withNodeOpts(study.command('ls').description('registered studies, and whether this node holds each one')).action(
    action(async (o: GlobalOpts) => {
      const client = await clientFor(o.node)
      const list = await client.studies()
      print(o.json === true, list, () =>
        list.length === 0
          ? 'no study is registered'
          : list
              .map(
                (s) =>
                  `${s.studyId}  ${s.custodian.padEnd(12)} ${String(s.chunkCount).padStart(6)} chunk(s) ${mb(s.size).padStart(9)} MB  height ${s.height}  ${s.local.complete ? 'held here' : s.local.chunksHeld > 0 ? `partly held (${s.local.chunksHeld}/${s.chunkCount})` : 'not held here'}` +
                  // The chain of versions in brief: which version this one follows and which follows it (study show lists it all).
                  (s.extends === null ? '' : `  extends ${s.extends.slice(0, 8)}…`) +
                  (s.extendedBy === null ? '' : `  newer version ${s.extendedBy.slice(0, 8)}…`),
              )
              .join('\n'),
      )
    }),
  )

  withNodeOpts(study.command('show <studyId>').description("a study's ledger record, its versions, and what this node holds of it")).action(
    action(async (studyId: string, o: GlobalOpts) => {
      const client = await clientFor(o.node)
      const s = await client.study(studyId)
      print(o.json === true, s, () =>
        table([
          ['study', s.studyId],
          ['custodian', s.custodian],
          ['owner', s.owner ?? '(none: the custodian decides)'],
          ['registered at height', s.height],
          // A study with versions: the one it extends, and the whole chain (a study alone shows neither).
          ...(s.versions === undefined || s.versions.length < 2
            ? []
            : [
                ['extends', s.extends ?? '(nothing: the first version)'] as [string, unknown],
                ...versionLines(s.versions).map((line, i) => [i === 0 ? 'versions' : '', line] as [string, unknown]),
              ]),
          ['size', `${s.size} bytes in ${s.chunkCount} chunk(s) of ${s.chunkSize}`],
          ['content root', s.contentRoot],
          ['study digest', s.studyDigest],
          ['chunks held here', `${s.local.chunksHeld}/${s.chunkCount}${s.local.chunkList ? '' : ' (no chunk list)'}`],
          ['key envelope', s.local.custodianEnvelope ? 'held' : 'missing'],
          ['demographics', s.local.demographics ? 'held (encrypted)' : 'missing'],
          ['complete here', s.local.complete ? 'yes' : 'no'],
          ...(s.replication === undefined
            ? []
            : [
                [
                  'holders',
                  `${s.replication.holders.join(', ') || 'none reachable'} (${s.replication.holders.length} of ${s.replication.target}: ${s.replication.state})`,
                ] as [string, unknown],
                ['assigned', s.replication.assigned.join(', ')] as [string, unknown],
                ...(s.replication.unreachable.length > 0 ? [['unreachable', s.replication.unreachable.join(', ')] as [string, unknown]] : []),
              ]),
        ]),
      )
    }),
  )
}
