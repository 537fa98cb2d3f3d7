import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ApiClient } from '../src/api/index.js'
import { noteTx, signTx } from '../src/chain/index.js'
import { Ed25519Signer } from '../src/crypto/index.js'
import { sleep } from '../src/util/index.js'
import { clientOf, devnetDown, devnetUp, type DevnetManifest } from '../src/devnet/index.js'
import { busyShare, daemonCpuMs, machineTicks } from './cpu.js'

/** Results of the 4-organization devnet benchmark. */
export interface DevnetBenchResult {
  readonly saturation: {
    readonly seconds: number
    readonly final: number
    readonly tps: number
    readonly blocks: number
    /** Over the saturated window: the share of the machine's cores that were busy (every process), each daemon's CPU time per final transaction (µs, every thread), and the cores the load generator used. */
    readonly cpu: { readonly machineBusy: number; readonly daemonUsPerTx: readonly number[]; readonly loadCores: number }
  }
  readonly latency: {
    readonly offeredTps: number
    readonly seconds: number
    readonly final: number
    readonly p50: number
    readonly p99: number
    readonly max: number
  }
}

interface Stream {
  readonly client: ApiClient
  readonly txs: { bytes: Uint8Array; hash: string }[]
  next: number
}

// One stream of pre-signed notes per (node, sender group): a sender's nonces reach one node in order.
function signStreams(chainId: string, clients: ApiClient[], sendersPerNode: number, perSender: number): Stream[] {
  return clients.map((client) => {
    const signers = Array.from({ length: sendersPerNode }, () => Ed25519Signer.generate().signer)
    const txs: { bytes: Uint8Array; hash: string }[] = []
    for (let n = 0; n < perSender; n++) {
      for (const s of signers) {
        const tx = signTx(s, { chainId, type: noteTx.name, nonce: n, payload: { text: `bench ${n}` } })
        txs.push({ bytes: tx.bytes, hash: Buffer.from(tx.id).toString('hex') })
      }
    }
    return { client, txs, next: 0 }
  })
}

/** Follows final blocks on one node: height, time seen, transaction hashes. */
function follow(client: ApiClient, signal: AbortSignal, onBlock: (b: { height: number; txs: string[]; at: number }) => void): Promise<void> {
  return (async () => {
    try {
      for await (const ev of client.events(signal, ['block'])) {
        if (ev.type !== 'block') continue
        const d = ev.data as { height: number; txs?: string[] }
        onBlock({ height: d.height, txs: d.txs ?? [], at: performance.now() })
      }
    } catch {
      // aborted at the end of the run
    }
  })()
}

async function saturate(m: DevnetManifest, seconds: number, log: (s: string) => void): Promise<DevnetBenchResult['saturation']> {
  const clients = await Promise.all(m.orgs.map((o) => clientOf(o)))
  const perNodeTps = 2500
  const streams = signStreams(m.chainId, clients, 16, Math.ceil((perNodeTps * seconds) / 16))
  log(`  saturation: ${streams.reduce((n, s) => n + s.txs.length, 0)} pre-signed notes, ${seconds} s`)
  const ac = new AbortController()
  let final = 0
  let blocks = 0
  let counting = false
  const watcher = follow(clients[0] as ApiClient, ac.signal, (b) => {
    if (!counting) return
    final += b.txs.length
    blocks++
  })
  await sleep(300)
  const daemonsCpu = (): Promise<(number | undefined)[]> => Promise.all(m.orgs.map(daemonCpuMs))
  const [m0, d0, g0] = [await machineTicks(), await daemonsCpu(), process.cpuUsage()]
  counting = true
  const t0 = performance.now()
  const end = t0 + seconds * 1000
  await Promise.all(
    streams.map(async (s) => {
      while (performance.now() < end && s.next < s.txs.length) {
        const batch = s.txs.slice(s.next, s.next + 250)
        const res = await s.client.submitTxs(batch.map((x) => x.bytes)).catch(() => null)
        if (res === null) {
          await sleep(50)
          continue
        }
        let accepted = 0
        for (const r of res) {
          if ('error' in r && (r.error.code === 'TX_MEMPOOL_FULL' || r.error.code === 'TX_SENDER_LIMIT')) break
          accepted++
        }
        s.next += accepted
        if (accepted < batch.length) await sleep(20)
      }
    }),
  )
  const elapsed = (performance.now() - t0) / 1000
  counting = false
  const [m1, d1, g1] = [await machineTicks(), await daemonsCpu(), process.cpuUsage(g0)]
  ac.abort()
  await watcher
  const cpu = {
    machineBusy: busyShare(m0, m1),
    daemonUsPerTx: d1.map((v, i) => (v === undefined || d0[i] === undefined || final === 0 ? Number.NaN : ((v - (d0[i] as number)) * 1000) / final)),
    loadCores: (g1.user + g1.system) / 1e6 / elapsed,
  }
  return { seconds: elapsed, final, tps: final / elapsed, blocks, cpu }
}

async function latency(m: DevnetManifest, offeredTps: number, seconds: number, log: (s: string) => void): Promise<DevnetBenchResult['latency']> {
  const clients = await Promise.all(m.orgs.map((o) => clientOf(o)))
  const streams = signStreams(m.chainId, clients, 4, Math.ceil((offeredTps * seconds) / clients.length / 4) + 1)
  log(`  latency: ${offeredTps} tx/s offered for ${seconds} s`)
  const submitted = new Map<string, number>()
  const lat: number[] = []
  const ac = new AbortController()
  const watcher = follow(clients[0] as ApiClient, ac.signal, (b) => {
    for (const h of b.txs) {
      const t = submitted.get(h)
      if (t !== undefined) {
        lat.push(b.at - t)
        submitted.delete(h)
      }
    }
  })
  await sleep(300)
  const tickMs = 50
  const perTickPerNode = Math.max(1, Math.round((offeredTps * tickMs) / 1000 / streams.length))
  const t0 = performance.now()
  let sent = 0
  for (let tick = 0; performance.now() - t0 < seconds * 1000; tick++) {
    await Promise.all(
      streams.map(async (s) => {
        const batch = s.txs.slice(s.next, s.next + perTickPerNode)
        s.next += batch.length
        const at = performance.now()
        for (const x of batch) submitted.set(x.hash, at)
        sent += batch.length
        await s.client.submitTxs(batch.map((x) => x.bytes)).catch(() => null)
      }),
    )
    const due = t0 + (tick + 1) * tickMs
    const wait = due - performance.now()
    if (wait > 0) await sleep(wait)
  }
  const deadline = performance.now() + 10_000
  while (submitted.size > 0 && performance.now() < deadline) await sleep(50)
  ac.abort()
  await watcher
  lat.sort((a, b) => a - b)
  const q = (p: number): number => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? Number.NaN
  return { offeredTps: sent / seconds, seconds, final: lat.length, p50: q(0.5), p99: q(0.99), max: lat[lat.length - 1] ?? Number.NaN }
}

/**
 * The 4-organization devnet on this machine: final transactions per second
 * at saturation, and finality latency (submission to the block event on
 * one node) at a steady offered load.
 */
export async function measureDevnet(opts: {
  saturationSeconds: number
  latencySeconds: number
  offeredTps: number
  basePort: number
  /** Each organization in its own network namespace (a devnet of hosts, unshaped links). */
  hosts?: boolean
  log: (s: string) => void
}): Promise<DevnetBenchResult> {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-bench-devnet-'))
  try {
    const m = await devnetUp({
      dir,
      orgs: 4,
      basePort: opts.basePort,
      ...(opts.hosts === true ? { hosts: true } : {}),
      blockIntervalMs: 1000,
      maxBlockTxs: Number(process.env.RADCHAIN_BENCH_BLOCK_TXS ?? 10_000),
      config: { logLevel: 'warn', mempool: { maxTxs: 40_000, maxBytes: 64 * 1024 * 1024, maxPerSender: 20_000 } },
    })
    const lat = await latency(m, opts.offeredTps, opts.latencySeconds, opts.log)
    const sat = await saturate(m, opts.saturationSeconds, opts.log)
    return { saturation: sat, latency: lat }
  } finally {
    await devnetDown(dir, true).catch(() => 0)
  }
}
