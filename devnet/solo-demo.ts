import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import cliProgress from 'cli-progress'
import type { ApiClient } from '../src/api/index.js'
import { initDataDir } from '../src/node/index.js'
import { RadError } from '../src/util/index.js'
import { DaemonProcess } from './process.js'

/** Options of the one-node demo. */
export interface SoloDemoOpts {
  /** Notes to submit. */
  readonly notes: number
  /** Keep the data dir instead of removing it. */
  readonly keep: boolean
  /** Data dir to use (a fresh temporary one by default). */
  readonly dir?: string
  readonly say: (line: string) => void
}

async function submitAll(client: ApiClient, n: number, label: string, bar: cliProgress.SingleBar | null, say: (l: string) => void): Promise<string[]> {
  const hashes: string[] = []
  const concurrency = 16
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++
      hashes[i] = await client.submitNote(`${label} ${i + 1} of ${n}`)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  let final = 0
  for (const h of hashes) {
    const s = await client.tx(h, 30_000)
    if (s.status !== 'final') throw new RadError('DEMO_FAILED', `note ${h} is ${s.status}, not final`)
    final++
    if (bar !== null) bar.update(final)
    else if (final % Math.max(1, Math.floor(n / 4)) === 0) say(`    ${final}/${n} final`)
  }
  return hashes
}

/**
 * The one-organization story: create a node, run its daemon, record notes
 * and watch them become final, kill the daemon with SIGKILL in the middle of
 * a burst, restart it and show nothing acknowledged was lost.
 */
export async function runSoloDemo(opts: SoloDemoOpts): Promise<void> {
  const say = opts.say
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'radchain-demo-')))
  const daemon = new DaemonProcess(dir)
  const tty = process.stderr.isTTY === true
  try {
    say(`1. Creating an organization node in ${dir}`)
    const init = await initDataDir({ dir, dev: true, orgId: 'org1', orgName: 'Demo Radiology', apiPort: 0, params: { blockIntervalMs: 1000 } })
    say(`   signing key ${init.signKey.slice(0, 16)}...  chain ${init.chainId ?? ''}`)
    say('2. Starting its daemon (the sole authority of a one-organization ledger)')
    let client = await daemon.start()
    const s0 = await client.status()
    say(`   API ${s0.api}, height ${s0.height}, state root ${s0.stateRoot.slice(0, 16)}...`)

    say(`3. Recording ${opts.notes} notes through the API and waiting until each is final`)
    const bar = tty ? new cliProgress.SingleBar({ format: '   {bar} {value}/{total} final', hideCursor: true }, cliProgress.Presets.shades_classic) : null
    bar?.start(opts.notes, 0)
    const t0 = performance.now()
    const first = await submitAll(client, opts.notes, 'demo note', bar, say)
    bar?.stop()
    const secs = (performance.now() - t0) / 1000
    const s1 = await client.status()
    say(`   ${first.length} notes final in ${secs.toFixed(2)} s; chain at height ${s1.height}`)

    say('4. Killing the daemon with SIGKILL while a new burst is in flight')
    let finalSoFar = 0
    let killAt: () => void = () => {}
    const enoughFinal = new Promise<void>((resolve) => { killAt = resolve })
    const burst = Array.from({ length: 400 }, async (_, i) => {
      try {
        const hash = await client.submitNote(`burst ${i + 1}`)
        const s = await client.tx(hash, 5000)
        if (s.status === 'final' && ++finalSoFar === 100) killAt()
        return s
      } catch {
        return null
      }
    })
    await Promise.race([enoughFinal, Promise.all(burst)])
    await daemon.kill()
    const acked = (await Promise.all(burst)).filter((s): s is NonNullable<typeof s> => s !== null && s.status === 'final')
    say(`   the daemon had reported ${acked.length} of the burst final before it died`)

    say('5. Restarting it on the same data dir')
    client = await daemon.start()
    const s2 = await client.status()
    say(`   resumed at height ${s2.height}`)
    let lost = 0
    for (const s of acked) if ((await client.tx(s.hash)).status !== 'final') lost++
    for (const h of first) if ((await client.tx(h)).status !== 'final') lost++
    if (lost > 0) throw new RadError('DEMO_FAILED', `${lost} acknowledged notes are missing after the restart`)
    say(`   all ${first.length + acked.length} acknowledged notes are still final`)
    const h = await client.submitNote('after the restart')
    const s3 = await client.tx(h, 10_000)
    say(`   a new note is final at height ${s3.height ?? '?'}: the chain goes on`)
    const head = await client.block('head')
    say(`6. Head block ${String(head.height)} ${String(head.hash).slice(0, 16)}..., certified by its authority's precommit`)
    const code = await daemon.stop()
    say(`   daemon stopped cleanly (exit code ${code ?? 'none'})`)
    say('Demo complete.')
  } finally {
    await daemon.kill()
    if (!opts.keep && opts.dir === undefined) await rm(dir, { recursive: true, force: true })
    else say(`Data dir kept: ${dir}`)
  }
}
