import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** dcmdump (Debian's dcmtk), the independent DICOM reader the tests check output files with. */
export const DCMDUMP = process.env.DCMDUMP ?? 'dcmdump'

async function present(): Promise<boolean> {
  try {
    await run(DCMDUMP, ['--version'])
    return true
  } catch (err) {
    return (err as { code?: unknown }).code !== 'ENOENT'
  }
}

let ready: Promise<void> | undefined

/**
 * Fails, naming the tool and its package, when dcmdump is missing. The tests
 * never install anything: `.ci/run` installs Debian's dcmtk beforehand.
 */
export function ensureDcmdump(): Promise<void> {
  ready ??= (async () => {
    if (!(await present()))
      throw new Error(
        `${DCMDUMP} not found: the tests read DICOM output with dcmtk's dcmdump; install Debian's dcmtk (apt-get install dcmtk) or run .ci/run as root`,
      )
  })()
  return ready
}

/** What dcmdump says of a file: its exit code and its error lines ("E: ..."). */
export async function dcmdumpErrors(file: string): Promise<string[]> {
  await ensureDcmdump()
  try {
    const { stdout, stderr } = await run(DCMDUMP, [file], { maxBuffer: 64 * 1024 * 1024 })
    return (stdout + stderr).split('\n').filter((l) => l.startsWith('E:'))
  } catch (err) {
    const e = err as { code?: unknown; stderr?: string; message: string }
    return [`exit ${String(e.code)}: ${(e.stderr ?? e.message).split('\n').find((l) => l.length > 0) ?? ''}`]
  }
}
