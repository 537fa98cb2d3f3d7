import { spawnSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { initDataDir } from '../src/node/index.js'
import { DaemonProcess, cliPath } from '../src/devnet/index.js'

/** Wall-clock times (ms) of one command, run `runs` times as a fresh process each time. */
export interface CommandTimes {
  readonly median: number
  readonly min: number
  readonly max: number
}

/** Result of the CLI start-up benchmark. */
export interface CliStartupResult {
  /** `node -e 0`: the baseline, measured in the same run. */
  readonly node: CommandTimes
  /** `radchain --version`. */
  readonly version: CommandTimes
  /** `radchain status --node <datadir>` against a running daemon. */
  readonly status: CommandTimes
  readonly runs: number
}

function time(args: string[], runs: number): CommandTimes {
  const ms: number[] = []
  // One warm-up run: the page cache and the compile cache, as for a user's second command.
  for (let i = 0; i <= runs; i++) {
    const t0 = performance.now()
    const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    const dt = performance.now() - t0
    if (r.status !== 0) throw new Error(`${args.join(' ')} failed: ${String(r.stderr)}`)
    if (i > 0) ms.push(dt)
  }
  const s = [...ms].sort((a, b) => a - b)
  return { median: s[Math.floor(s.length / 2)] as number, min: s[0] as number, max: s[s.length - 1] as number }
}

/**
 * How long the CLI takes to start, beside a bare Node.js start in the same
 * run: `radchain --version`, and `radchain status` against a running
 * one-node dev chain (the command's whole life: start, read the data dir,
 * one API call, print). Runs alternate so that drift hits each alike.
 */
export async function measureCliStartup(opts: { runs?: number } = {}): Promise<CliStartupResult> {
  const runs = opts.runs ?? 15
  const dir = await mkdtemp(join(tmpdir(), 'radchain-bench-cli-'))
  const node = join(dir, 'node')
  const daemon = new DaemonProcess(node)
  try {
    await initDataDir({ dir: node, dev: true, apiPort: 0, scrypt: { N: 1024, r: 8, p: 1 } })
    await daemon.start()
    const all = { node: [] as CommandTimes[], version: [] as CommandTimes[], status: [] as CommandTimes[] }
    // Three rounds of runs/3 each, interleaved.
    const per = Math.max(1, Math.round(runs / 3))
    for (let round = 0; round < 3; round++) {
      all.node.push(time(['-e', '0'], per))
      all.version.push(time([cliPath(), '--version'], per))
      all.status.push(time([cliPath(), 'status', '--node', node], per))
    }
    const merge = (xs: CommandTimes[]): CommandTimes => {
      const med = xs.map((x) => x.median).sort((a, b) => a - b)
      return { median: med[1] as number, min: Math.min(...xs.map((x) => x.min)), max: Math.max(...xs.map((x) => x.max)) }
    }
    return { node: merge(all.node), version: merge(all.version), status: merge(all.status), runs: per * 3 }
  } finally {
    await daemon.kill().catch(() => undefined)
    await rm(dir, { recursive: true, force: true })
  }
}
