import { execFile } from 'node:child_process'
import { mkdir, rmdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
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
 * Makes sure dcmdump is there: `.ci/run` installs dcmtk beforehand; on a
 * machine without it, as root with apt-get, it is installed here (one test
 * process at a time, behind a lock folder). Otherwise fails with what to do.
 */
export function ensureDcmdump(): Promise<void> {
  ready ??= (async () => {
    if (await present()) return
    const lock = join(tmpdir(), 'radchain-dcmtk-install.lock')
    const deadline = Date.now() + 10 * 60_000
    for (;;) {
      try {
        await mkdir(lock)
        break
      } catch {
        if (Date.now() > deadline) throw new Error(`waited too long for ${lock}; remove it if no install is running`)
        await new Promise((r) => setTimeout(r, 1000))
        if (await present()) return
      }
    }
    try {
      if (await present()) return
      if (process.getuid?.() !== 0) throw new Error('dcmdump not found: install Debian\'s dcmtk (apt-get install dcmtk)')
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
      await run('apt-get', ['update', '-qq'], { env, timeout: 300_000 })
      await run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'dcmtk'], { env, timeout: 300_000 })
      if (!(await present())) throw new Error('dcmtk installed but dcmdump still not found')
    } finally {
      await rmdir(lock).catch(() => undefined)
    }
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
