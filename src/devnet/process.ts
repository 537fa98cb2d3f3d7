import { spawn, type ChildProcess } from 'node:child_process'
import { openSync, closeSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ApiClient, type DaemonInfo } from '../api/index.js'
import { DATADIR_FILES, daemonEnv } from '../node/index.js'
import { sleep } from '../util/index.js'
import { DevnetError } from './errors.js'

/** The repository root, whether this file runs from source or from dist/. */
export function repoRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url))
  // src/devnet/ in the sources, dist/src/devnet/ once built.
  const root = resolve(here, '..', '..')
  return basename(root) === 'dist' ? resolve(root, '..') : root
}

/** Path of the built CLI entry point. */
export function cliPath(): string {
  return join(repoRoot(), 'dist', 'bin', 'radchain.js')
}

/** Path of the built devnet daemon entry (fault switches and the partition route; src/devnet/daemon-main.ts). */
export function devnetDaemonPath(): string {
  return join(repoRoot(), 'dist', 'src', 'devnet', 'daemon-main.js')
}

/** At most this many cores: the devnet's daemons collect garbage on their main thread only (see daemonNodeArgs). */
const SHARED_CORES_MAX = 4

/**
 * Node.js flags for a devnet daemon: RADCHAIN_DAEMON_NODE_ARGS (e.g.
 * --cpu-prof for profiling), and on a machine of at most SHARED_CORES_MAX
 * cores `--single-threaded-gc`. A devnet runs several daemons on one
 * machine; with fewer cores than busy processes, V8's helper threads for
 * concurrent marking and parallel scavenges only compete with the other
 * daemons for the same cores. Measured on 2 cores during a chunk transfer:
 * the receiving daemon spent about 40% of its CPU in those threads, and
 * with the flag the transfer used about 30% less CPU in all. A daemon
 * started on its own (`radchain daemon`) keeps V8's defaults.
 */
export function daemonNodeArgs(): string[] {
  const args = (process.env.RADCHAIN_DAEMON_NODE_ARGS ?? '').split(' ').filter((a) => a !== '')
  if (availableParallelism() <= SHARED_CORES_MAX && !args.some((a) => a.includes('single-threaded-gc') || a.includes('concurrent-marking')))
    args.push('--single-threaded-gc')
  return args
}

/** A daemon child process on one data dir. */
export class DaemonProcess {
  readonly dataDir: string
  #child: ChildProcess | undefined
  #exited: Promise<number | null> | undefined

  constructor(dataDir: string) {
    this.dataDir = dataDir
  }

  /** Process id while running. */
  get pid(): number | undefined {
    return this.#child?.pid
  }

  /** True while the process has not exited. */
  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null
  }

  /**
   * Starts `radchain daemon --dir <dataDir>` with output appended to
   * `<dataDir>/daemon.log`, and waits until its API answers (90 s by
   * default: an exit is reported at once, and a first start on a cold disk
   * cache beside other daemons took over 20 s; see startOrg in devnet.ts).
   */
  async start(opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<ApiClient> {
    const log = openSync(join(this.dataDir, 'daemon.log'), 'a')
    const child = spawn(process.execPath, [...daemonNodeArgs(), cliPath(), 'daemon', '--dir', this.dataDir], {
      stdio: ['ignore', log, log],
      env: daemonEnv({ ...process.env, ...opts.env }),
    })
    closeSync(log)
    this.#child = child
    this.#exited = new Promise((res) => child.once('exit', (code) => res(code)))
    const deadline = Date.now() + (opts.timeoutMs ?? 90_000)
    let lastErr: unknown
    while (Date.now() < deadline) {
      if (!this.running) {
        const tail = await readFile(join(this.dataDir, 'daemon.log'), 'utf8').catch(() => '')
        throw new DevnetError('DEVNET_DAEMON_EXITED', `daemon for ${this.dataDir} exited: ${tail.trim().split('\n').slice(-3).join(' | ')}`)
      }
      try {
        const info = JSON.parse(await readFile(join(this.dataDir, DATADIR_FILES.daemon), 'utf8')) as DaemonInfo
        if (info.pid === child.pid) {
          const token = (await readFile(join(this.dataDir, DATADIR_FILES.apiToken), 'utf8')).trim()
          const client = new ApiClient({ url: info.api, token, ...(info.socket === undefined ? {} : { socketPath: info.socket }) })
          await client.status()
          return client
        }
      } catch (err) {
        lastErr = err
      }
      await sleep(50)
    }
    await this.kill()
    throw new DevnetError('DEVNET_START_TIMEOUT', `daemon for ${this.dataDir} did not come up: ${String(lastErr)}`)
  }

  /** SIGTERM, then waits for a clean exit (SIGKILL after `timeoutMs`). Returns the exit code. */
  async stop(timeoutMs = 10_000): Promise<number | null> {
    if (!this.running) return this.#child?.exitCode ?? null
    this.#child?.kill('SIGTERM')
    const t = setTimeout(() => this.#child?.kill('SIGKILL'), timeoutMs)
    const code = await this.#exited
    clearTimeout(t)
    return code ?? null
  }

  /** SIGKILL (kill -9) and wait for the process to be gone. */
  async kill(): Promise<void> {
    if (!this.running) return
    this.#child?.kill('SIGKILL')
    await this.#exited
  }
}
