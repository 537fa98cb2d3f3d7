import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noteTx, signTx } from '../src/chain/index.js'
import { Ed25519Signer } from '../src/crypto/index.js'
import { initDataDir } from '../src/node/index.js'
import type { ApiClient } from '../src/api/index.js'
import { DaemonProcess } from '../src/devnet/index.js'

/** Result of the one-node throughput run. */
export interface ThroughputResult {
  readonly txs: number
  readonly seconds: number
  readonly tps: number
  readonly blocks: number
  readonly rejected: number
}

// One stream of batches per submitting worker, each with its own senders, so
// a sender's nonces always arrive in order.
function signStreams(chainId: string, streams: number, sendersPerStream: number, perSender: number, label: string): Uint8Array[][][] {
  return Array.from({ length: streams }, () => {
    const signers = Array.from({ length: sendersPerStream }, () => Ed25519Signer.generate().signer)
    const all: Uint8Array[] = []
    for (let n = 0; n < perSender; n++) {
      for (const s of signers) all.push(signTx(s, { chainId, type: noteTx.name, nonce: n, payload: { text: `${label} ${n}` } }).bytes)
    }
    const batches: Uint8Array[][] = []
    for (let i = 0; i < all.length; i += 500) batches.push(all.slice(i, i + 500))
    return batches
  })
}

async function push(client: ApiClient, streams: Uint8Array[][][]): Promise<{ hashes: string[]; rejected: number; firstError?: string }> {
  const hashes: string[] = []
  let rejected = 0
  let firstError: string | undefined
  await Promise.all(
    streams.map(async (batches) => {
      for (const b of batches) {
        for (const r of await client.submitTxs(b)) {
          if ('hash' in r) hashes.push(r.hash)
          else {
            rejected++
            firstError ??= `${r.error.code}: ${r.error.message}`
          }
        }
      }
    }),
  )
  return { hashes, rejected, ...(firstError === undefined ? {} : { firstError }) }
}

async function waitAllFinal(client: ApiClient, hashes: string[]): Promise<void> {
  // Nonces are per sender and blocks are in order, so once the last-submitted
  // hashes are final every earlier one is too; check a sample plus the tail.
  for (const h of hashes.slice(-64)) {
    const s = await client.tx(h, 60_000)
    if (s.status !== 'final') throw new Error(`transaction ${h} ended ${s.status}`)
  }
  for (let i = 0; i < hashes.length; i += Math.max(1, Math.floor(hashes.length / 200))) {
    const s = await client.tx(hashes[i] as string)
    if (s.status !== 'final') throw new Error(`transaction ${hashes[i]} ended ${s.status}`)
  }
}

/**
 * Transactions per second from submission to final on one node (a daemon
 * process, its own authority), fed pre-signed notes through the HTTP API in
 * batches of 500 from 32 senders.
 */
export async function measureNodeThroughput(opts: { txs: number; log: (s: string) => void }): Promise<ThroughputResult> {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-bench-'))
  const daemon = new DaemonProcess(dir)
  try {
    const init = await initDataDir({ dir, dev: true, apiPort: 0, config: { logLevel: 'warn', mempool: { maxTxs: 200_000, maxBytes: 256 * 1024 * 1024 } } })
    const chainId = init.chainId as string
    const client = await daemon.start()
    const warm = signStreams(chainId, 4, 8, 250, 'warm-up')
    const main = signStreams(chainId, 4, 8, Math.ceil(opts.txs / 32), 'bench')
    opts.log('  warm-up: 8000 transactions')
    const w = await push(client, warm)
    if (w.rejected > 0) throw new Error(`warm-up: ${w.rejected} refused, first: ${w.firstError ?? ''}`)
    await waitAllFinal(client, w.hashes)
    const h0 = (await client.status()).height
    opts.log(`  measuring: ${main.flat().reduce((n, b) => n + b.length, 0)} transactions`)
    const t0 = performance.now()
    const m = await push(client, main)
    if (m.rejected > 0) opts.log(`  ${m.rejected} refused, first: ${m.firstError ?? ''}`)
    await waitAllFinal(client, m.hashes)
    const seconds = (performance.now() - t0) / 1000
    const h1 = (await client.status()).height
    await daemon.stop()
    return { txs: m.hashes.length, seconds, tps: m.hashes.length / seconds, blocks: h1 - h0, rejected: m.rejected }
  } finally {
    await daemon.kill()
    await rm(dir, { recursive: true, force: true })
  }
}
