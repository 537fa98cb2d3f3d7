import type { Command } from 'commander'
import { resolve } from 'node:path'
import cliProgress from 'cli-progress'
import { RadError, sleep } from '../../util/index.js'
import { action, withNodeOpts, type GlobalOpts } from '../main.js'
import { print } from '../output.js'
import { clientFor } from '../target.js'

interface JobView {
  state: string
  files: number
  filesDone: number
  bytes: number
  bad: { path: string; code: string; message: string }[]
  studies: { studyId: string; tx: string; height: number | null; instances: number; chunks: number; size: number }[]
  error: { code: string; message: string } | null
}

/** study add. */
export function registerStudyCommands(program: Command): void {
  const study = program.command('study').description('imaging studies: de-identified, encrypted, chunked and registered on the ledger')
  withNodeOpts(study.command('add <paths...>').description('de-identify (DICOM PS3.15 Basic profile), encrypt and register every study found in these files and folders'))
    .option('--skip-bad', 'leave out files that are not readable DICOM (they are listed) instead of refusing')
    .action(action(async (paths: string[], o: GlobalOpts & { skipBad?: boolean }) => {
      const client = await clientFor(o.node)
      // The daemon reads the files: give it absolute paths.
      const id = await client.addStudies(paths.map((p) => resolve(p)), { skipBad: o.skipBad === true })
      const tty = process.stderr.isTTY === true && o.json !== true
      const bar = tty ? new cliProgress.SingleBar({ format: '{state} {bar} {value}/{total} files, {mb} MB encrypted', hideCursor: true }, cliProgress.Presets.shades_classic) : null
      let started = false
      let job: JobView
      for (;;) {
        job = (await client.job(id)) as unknown as JobView
        if (bar !== null && job.files > 0) {
          if (!started) bar.start(job.files, 0, { state: job.state, mb: '0.0' })
          started = true
          bar.update(job.filesDone, { state: job.state, mb: (job.bytes / 1e6).toFixed(1) })
        }
        if (job.state === 'done' || job.state === 'failed') break
        await sleep(200)
      }
      bar?.stop()
      if (job.state === 'failed') throw new RadError(job.error?.code ?? 'STUDY_FAILED', job.error?.message ?? 'study add failed')
      for (const b of job.bad) process.stderr.write(`radchain: skipped ${b.path}: ${b.code}\n`)
      print(o.json === true, job.studies, () => job.studies.map((s) => `${s.studyId}  ${s.instances} instance(s), ${s.chunks} chunk(s), ${s.size} bytes, final at height ${s.height ?? '?'}`).join('\n'))
    }))
}
