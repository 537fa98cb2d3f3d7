import '../util/polyfill.js'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { sleep } from '../util/index.js'
import {
  clientOf,
  devnetDown,
  devnetHeal,
  devnetPartition,
  devnetUp,
  pidOf,
  reapplyPartition,
  startOrg,
  stopOrg,
  type DevnetManifest,
  type DevnetOrg,
} from './devnet.js'

/**
 * A seeded randomized fault run on a 4-organization devnet: while notes
 * flow, it kills (SIGKILL) and restarts nodes, partitions and heals the
 * network, and freezes processes (SIGSTOP/SIGCONT, a long delay); then it
 * heals everything and checks that no two nodes hold different final blocks
 * at any height, that every transaction reported final is final everywhere,
 * and that the chain still makes progress.
 *
 *   npm run fault -- [--seed N] [--seconds S] [--base-port P] [--dir D]
 */

function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i < 0 ? undefined : process.argv[i + 1]
}

/** An integer option in [min, max]; a bad value ends the run with one line and exit code 1. */
function intArg(name: string, fallback: number, min: number, max: number): number {
  const v = arg(name)
  const n = v === undefined ? fallback : Number(v)
  if (!Number.isInteger(n) || n < min || n > max) {
    process.stderr.write(`radchain fault run: ${name} must be an integer between ${min} and ${max}, got ${JSON.stringify(v)}\n`)
    process.exit(1)
  }
  return n
}

const seed = intArg('--seed', Math.floor(Math.random() * 2 ** 31), 0, 2 ** 32 - 1)
const seconds = intArg('--seconds', 240, 1, 24 * 3600)
const basePort = intArg('--base-port', 9700, 1024, 65000)
// A folder of the caller's is kept; a temporary one is removed after a run that passed.
const givenDir = arg('--dir')
const rand = mulberry32(seed)
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T
const t0 = Date.now()
const stamp = (): string => `${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s`
const say = (s: string): void => {
  process.stdout.write(`${stamp()}  ${s}\n`)
}

interface Faults {
  kills: number
  restarts: number
  partitions: number
  heals: number
  freezes: number
}

async function liveOrgs(m: DevnetManifest): Promise<DevnetOrg[]> {
  const out: DevnetOrg[] = []
  for (const o of m.orgs) if ((await pidOf(o)) !== undefined) out.push(o)
  return out
}

async function main(): Promise<number> {
  const dir = givenDir === undefined ? await mkdtemp(join(tmpdir(), 'radchain-fault-')) : resolve(givenDir)
  say(`seed ${seed}, ${seconds} s of faults, devnet in ${dir}, ports from ${basePort}`)
  const m = await devnetUp({ dir, orgs: 4, basePort, config: { logLevel: 'warn' } })
  const faults: Faults = { kills: 0, restarts: 0, partitions: 0, heals: 0, freezes: 0 }
  const acked = new Map<string, number>()
  let submitted = 0
  let stop = false
  const frozen = new Set<number>()

  // Load: notes to random live nodes, each awaited to final (or given up).
  const load = (async () => {
    while (!stop) {
      const live = await liveOrgs(m)
      if (live.length === 0) {
        await sleep(200)
        continue
      }
      const o = pick(live)
      try {
        const c = await clientOf(o)
        const hashes = await Promise.all(Array.from({ length: 10 }, (_, i) => c.submitNote(`fault-run ${submitted + i}`)))
        submitted += hashes.length
        const st = await Promise.all(hashes.map((h) => c.tx(h, 3000)))
        for (const s of st) if (s.status === 'final' && s.height !== undefined) acked.set(s.hash, s.height)
      } catch {
        await sleep(100)
      }
    }
  })()

  const end = t0 + seconds * 1000
  while (Date.now() < end) {
    await sleep(2000 + rand() * 4000)
    const live = await liveOrgs(m)
    const down = m.orgs.filter((o) => !live.includes(o))
    const r = rand()
    try {
      if (r < 0.25 && live.length > 2) {
        const o = pick(live)
        await stopOrg(o, 'SIGKILL')
        faults.kills++
        say(`kill -9 ${o.id}`)
      } else if (r < 0.45 && down.length > 0) {
        const o = pick(down)
        await startOrg(o)
        await reapplyPartition(dir, o)
        faults.restarts++
        say(`restart ${o.id}`)
      } else if (r < 0.65) {
        const ids = m.orgs.map((o) => o.id).sort(() => rand() - 0.5)
        const k = 1 + Math.floor(rand() * 2)
        await devnetPartition(dir, ids.slice(0, k), ids.slice(k))
        faults.partitions++
        say(`partition ${ids.slice(0, k).join(' ')} | ${ids.slice(k).join(' ')}`)
      } else if (r < 0.85) {
        await devnetHeal(dir)
        faults.heals++
        say('heal')
      } else if (live.length > 0) {
        const o = pick(live)
        const pid = await pidOf(o)
        if (pid !== undefined) {
          const ms = 500 + Math.floor(rand() * 3000)
          process.kill(pid, 'SIGSTOP')
          frozen.add(pid)
          say(`freeze ${o.id} for ${ms} ms`)
          await sleep(ms)
          process.kill(pid, 'SIGCONT')
          frozen.delete(pid)
          faults.freezes++
        }
      }
    } catch (err) {
      say(`fault step failed: ${err instanceof Error ? err.message : String(err)}`)
    }
  }

  say('healing and restarting everything')
  for (const pid of frozen) process.kill(pid, 'SIGCONT')
  await devnetHeal(dir)
  for (const o of m.orgs) if ((await pidOf(o)) === undefined) await startOrg(o)
  stop = true
  await load

  // Progress: every node passes the highest head seen now.
  const heads = await Promise.all(m.orgs.map(async (o) => (await (await clientOf(o)).status()).height))
  const target = Math.max(...heads) + 3
  const deadline = Date.now() + 60_000
  let resumed = false
  while (Date.now() < deadline) {
    const hs = await Promise.all(m.orgs.map(async (o) => (await (await clientOf(o)).status()).height))
    if (hs.every((h) => h >= target)) {
      resumed = true
      break
    }
    await sleep(200)
  }
  say(resumed ? `all four passed height ${target}` : `NOT all nodes reached height ${target} within 60 s`)

  // Safety: one block per height across all four stores.
  const clients = await Promise.all(m.orgs.map((o) => clientOf(o)))
  const top = Math.min(...(await Promise.all(clients.map(async (c) => (await c.status()).height))))
  let conflicts = 0
  for (let h = 1; h <= top; h++) {
    const hashes = await Promise.all(clients.map(async (c) => String((await c.block(String(h))).hash)))
    if (new Set(hashes).size !== 1) {
      conflicts++
      say(`CONFLICT at height ${h}: ${hashes.join(' ')}`)
    }
  }
  // Durability: every transaction reported final is final at the same height on every node.
  let lost = 0
  for (const [hash, height] of acked) {
    for (const c of clients) {
      const s = await c.tx(hash)
      if (s.status !== 'final' || s.height !== height) lost++
    }
  }
  say(`faults: ${faults.kills} kills, ${faults.restarts} restarts, ${faults.partitions} partitions, ${faults.heals} heals, ${faults.freezes} freezes`)
  say(
    `figures: ${top} heights compared on 4 nodes, ${conflicts} conflicting; ${submitted} notes submitted, ${acked.size} acknowledged final, ${lost} missing or moved`,
  )
  const ok = conflicts === 0 && lost === 0 && resumed
  say(ok ? `PASS (seed ${seed})` : `FAIL (seed ${seed}); devnet kept in ${dir}`)
  await devnetDown(dir, false)
  if (ok && givenDir === undefined) await rm(dir, { recursive: true, force: true })
  return ok ? 0 : 1
}

process.exitCode = await main()
