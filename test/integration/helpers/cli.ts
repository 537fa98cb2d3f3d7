import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cliPath } from '../../../src/devnet/index.js'

/** What one CLI run did. */
export interface CliResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  readonly ms: number
}

/** The environment without any RADCHAIN_* variable, so the caller's shell never leaks into a test. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RADCHAIN_')) env[k] = v
  return { ...env, ...extra }
}

/**
 * Runs `node dist/bin/radchain.js ...args` and collects its output. A run
 * that takes longer than `timeoutMs` is killed (and shows as signal SIGKILL).
 */
export function runCli(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
  const started = Date.now()
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [cliPath(), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv(opts.env) })
    let stdout = ''
    let stderr = ''
    p.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d
    })
    p.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d
    })
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 30_000)
    p.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    p.once('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started })
    })
  })
}

/** Parses a run's stdout as JSON (a test failure, not a crash, if it is not). */
export function jsonOf<T = Record<string, unknown>>(t: Test, r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T
  } catch {
    t.fail(`stdout is not JSON: ${JSON.stringify(r.stdout)} (stderr ${JSON.stringify(r.stderr)})`)
    return {} as T
  }
}

/** Lines of a text, without the empty one after a final newline. */
export function linesOf(s: string): string[] {
  const l = s.split('\n')
  if (l[l.length - 1] === '') l.pop()
  return l
}

/**
 * Asserts a failed run that explained itself in one line: non-zero exit
 * code, exactly one stderr line `radchain: <message> [CODE]`, no stack trace.
 * With `code`, the line must end with that code; a run with --json must end
 * it with the code of its `{"error":{"code"}}`. Returns that line.
 */
export function assertOneLineError(t: Test, r: CliResult, match?: RegExp, what = 'command', code?: string): string {
  t.equal(r.signal, null, `${what}: exited by itself, not killed`)
  t.not(r.code, 0, `${what}: non-zero exit code`)
  t.not(r.code, null, `${what}: has an exit code`)
  const lines = linesOf(r.stderr)
  t.equal(lines.length, 1, `${what}: exactly one line on stderr`, { stderr: r.stderr })
  const line = lines[0] ?? ''
  t.match(line, /^radchain: \S/, `${what}: the line starts with "radchain: "`)
  t.notMatch(r.stderr, /^\s+at\s/m, `${what}: no stack trace`)
  t.notMatch(r.stderr, /node:internal|file:\/\//, `${what}: no stack trace`)
  if (match !== undefined) t.match(line, match, `${what}: the line says what is wrong`)
  const jsonCode = errorCodeOf(r.stdout)
  if (jsonCode !== undefined) t.ok(line.endsWith(` [${jsonCode}]`), `${what}: the line ends with the code --json gives, [${jsonCode}]`, { line })
  if (code !== undefined) t.ok(line.endsWith(` [${code}]`), `${what}: the line ends with [${code}]`, { line })
  return line
}

/** The `error.code` of a run's JSON output, if it printed one. */
function errorCodeOf(stdout: string): string | undefined {
  try {
    const v = JSON.parse(stdout) as { error?: { code?: unknown } }
    return typeof v.error?.code === 'string' ? v.error.code : undefined
  } catch {
    return undefined
  }
}

/** A fresh temporary directory, removed in teardown. */
export async function tempDir(t: Test, prefix = 'radchain-cli-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Relative path -> `mode sha256` of every file under `dir` (`socket mode inode` of a socket) (recursive; `skip` names top-level entries to ignore). */
export async function snapshot(dir: string, skip: readonly string[] = []): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  const walk = async (rel: string): Promise<void> => {
    for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
      const r = rel === '' ? e.name : join(rel, e.name)
      if (rel === '' && skip.includes(e.name)) continue
      if (e.isDirectory()) {
        out[r + '/'] = 'dir ' + ((await stat(join(dir, r))).mode & 0o777).toString(8)
        await walk(r)
      } else if (e.isSocket()) {
        // The API's socket: a new one (another daemon's) would have another inode.
        const st = await stat(join(dir, r))
        out[r] = `socket ${(st.mode & 0o777).toString(8)} ${st.ino}`
      } else {
        const p = join(dir, r)
        const mode = ((await stat(p)).mode & 0o777).toString(8)
        out[r] = `${mode} ${createHash('sha256')
          .update(await readFile(p))
          .digest('hex')}`
      }
    }
  }
  await walk('')
  return out
}

export { exists } from '../../../src/util/index.js'
