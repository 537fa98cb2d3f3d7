// The polyfill comes first: this file is also the entry point of the receiver process.
import '../src/util/polyfill.js'
import { fork, spawn as spawnProcess, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { childCpuMs, cpuMsOf, nextMessage, stopChildren } from './child-ipc.js'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { tls } from '@libp2p/tls'
import { yamux } from '@chainsafe/libp2p-yamux'
import { multiaddr } from '@multiformats/multiaddr'
import type { Stream, StreamMessageEvent } from '@libp2p/interface'

/**
 * One-stream libp2p throughput on loopback: TCP + Yamux + Noise or TLS 1.3.
 *
 * Receiver and sender each run in a fresh child process (node:child_process
 * fork of this same file), so each has its own process, main thread, event
 * loop and heap, as two organizations' daemons would, and neither carries
 * the heap of the process running the benchmarks. The sender writes
 * `bytes` on one stream in 256 KiB chunks, waiting for the stream's 'drain'
 * event whenever send() returns false (so at most a few windows are buffered);
 * the receiver counts bytes and answers one ack byte when all have arrived.
 * The clock runs from the first send to the ack, after a warm-up transfer on
 * the same connection (JIT, Yamux window growth); the timed transfer runs
 * `runs` times (default 3), each on a new stream, in each of `pairs` (default
 * 3) fresh pairs of processes, and the median of all of them is reported,
 * since one run on a shared 2-core machine varies by a factor of two.
 * MB = 10^6 bytes.
 */

const PROTOCOL = '/radchain-bench/stream/1'
const RECEIVER_FLAG = '--libp2p-stream-receiver'
const SENDER_FLAG = '--libp2p-stream-sender'
const CHUNK_BYTES = 256 * 1024
const HEADER_BYTES = 8
const WARMUP_MAX_BYTES = 128 * 1024 * 1024
const TIMEOUT_MS = 300_000

/** Encryption of the benchmark connection. */
export type BenchEncryption = 'noise' | 'tls'

async function makeNode(encryption: BenchEncryption, listen: string[]): Promise<Libp2p> {
  return createLibp2p({
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [encryption === 'noise' ? noise() : tls()],
    streamMuxers: [yamux()],
    // One stream filling a shaped link queues many megabytes ahead of libp2p's own pings: their round trip
    // passes the connection monitor's timeout (5 s at least), which would cut the connection mid-transfer.
    connectionMonitor: { abortConnectionOnPingFailure: false },
  })
}

// Receiver side: each stream starts with an 8-byte big-endian byte count; when
// that many bytes have followed, one ack byte goes back.
async function runReceiver(encryption: BenchEncryption, host = '127.0.0.1'): Promise<void> {
  const node = await makeNode(encryption, [`/ip4/${host}/tcp/0`])
  await node.handle(
    PROTOCOL,
    (stream: Stream) => {
      let header = new Uint8Array(0)
      let expected = -1
      let received = 0
      const onMessage = (evt: StreamMessageEvent): void => {
        for (const chunk of evt.data instanceof Uint8Array ? [evt.data] : evt.data) {
          let c = chunk
          if (expected < 0) {
            const need = HEADER_BYTES - header.length
            const merged = new Uint8Array(header.length + Math.min(need, c.length))
            merged.set(header)
            merged.set(c.subarray(0, need), header.length)
            header = merged
            c = c.subarray(need)
            if (header.length < HEADER_BYTES) continue
            expected = Number(new DataView(header.buffer).getBigUint64(0))
          }
          received += c.length
        }
        if (expected >= 0 && received >= expected) {
          stream.removeEventListener('message', onMessage)
          stream.send(Uint8Array.of(received === expected ? 1 : 0))
          void stream.close().catch(() => stream.abort(new Error('close failed')))
        }
      }
      stream.addEventListener('message', onMessage)
    },
    { maxInboundStreams: 4 },
  )
  const addr = node.getMultiaddrs()[0]?.toString()
  process.send?.({ addr })
  const stop = (): void => {
    Promise.resolve(node.stop())
      .finally(() => process.exit(0))
      .catch(() => {})
  }
  process.on('message', (msg: unknown) => {
    if ((msg as { stop?: boolean }).stop === true) stop()
    if ((msg as { cpu?: boolean }).cpu === true) process.send?.({ cpuMs: cpuMsOf(process.cpuUsage()) })
  })
  process.on('disconnect', stop)
}

function waitDrain(stream: Stream): Promise<void> {
  if (!stream.writableNeedsDrain) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const onDrain = (): void => {
      stream.removeEventListener('close', onClose)
      resolve()
    }
    const onClose = (): void => {
      stream.removeEventListener('drain', onDrain)
      reject(new Error('stream closed while waiting for drain'))
    }
    stream.addEventListener('drain', onDrain, { once: true })
    stream.addEventListener('close', onClose, { once: true })
  })
}

// Sends `bytes` on a fresh stream and resolves with the seconds from the first
// send to the receiver's ack.
async function transfer(node: Libp2p, addr: string, bytes: number, chunk: Uint8Array): Promise<number> {
  const stream = await node.dialProtocol(multiaddr(addr), PROTOCOL, { signal: AbortSignal.timeout(10_000) })
  const ack = new Promise<number>((resolve, reject) => {
    stream.addEventListener(
      'message',
      (evt) => {
        const d = evt.data instanceof Uint8Array ? evt.data : evt.data.subarray()
        resolve(d[0] ?? 0)
      },
      { once: true },
    )
    stream.addEventListener('close', () => reject(new Error('stream closed before the ack')), { once: true })
  })
  ack.catch(() => {})
  const header = new Uint8Array(HEADER_BYTES)
  new DataView(header.buffer).setBigUint64(0, BigInt(bytes))
  const start = process.hrtime.bigint()
  let ok = stream.send(header)
  let left = bytes
  while (left > 0) {
    if (!ok) await waitDrain(stream)
    const n = Math.min(left, chunk.length)
    ok = stream.send(n === chunk.length ? chunk : chunk.subarray(0, n))
    left -= n
  }
  const code = await ack
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  if (code !== 1) throw new Error('receiver counted a different number of bytes')
  await stream.close()
  return seconds
}

/** What {@link measureLibp2pStream} measured. MB = 10^6 bytes. */
export interface StreamResult {
  /** Throughput of the median timed transfer, over all pairs. */
  mbPerSec: number
  /** Seconds of that transfer. */
  seconds: number
  /** CPU time both processes spent per MB over all timed transfers (every thread, user and system). */
  cpuMsPerMB: number
  /** Slowest and fastest timed transfer, MB/s. */
  range: { min: number; max: number }
}

// Sender side: on { addr, bytes, runs }, a warm-up transfer, then { warmed }; on { go }, the timed
// transfers, then { times, cpuMs } (its own CPU over them).
async function runSender(encryption: BenchEncryption): Promise<void> {
  const node = await makeNode(encryption, [])
  const chunk = new Uint8Array(CHUNK_BYTES).fill(0x5a)
  let job: { addr: string; bytes: number; runs: number } | undefined
  const fail = (err: unknown): void => {
    process.send?.({ error: String(err) })
  }
  process.on('message', (msg: unknown) => {
    const m = msg as { addr?: string; bytes?: number; runs?: number; go?: boolean; stop?: boolean }
    if (m.stop === true) {
      Promise.resolve(node.stop())
        .finally(() => process.exit(0))
        .catch(() => {})
      return
    }
    if (typeof m.addr === 'string' && typeof m.bytes === 'number' && typeof m.runs === 'number') {
      const j = { addr: m.addr, bytes: m.bytes, runs: m.runs }
      job = j
      void (async () => {
        await transfer(node, j.addr, Math.min(j.bytes, WARMUP_MAX_BYTES), chunk)
        const used = node.getConnections()[0]?.encryption
        const want = encryption === 'noise' ? '/noise' : '/tls/1.0.0'
        if (used !== want) throw new Error(`connection encrypted with ${String(used)}, not ${want}`)
        process.send?.({ warmed: true })
      })().catch(fail)
    }
    if (m.go === true && job !== undefined) {
      const j = job
      void (async () => {
        const times: number[] = []
        const cpu0 = process.cpuUsage()
        for (let i = 0; i < j.runs; i++) times.push(await transfer(node, j.addr, j.bytes, chunk))
        process.send?.({ times, cpuMs: cpuMsOf(process.cpuUsage(cpu0)) })
      })().catch(fail)
    }
  })
  process.on('disconnect', () => process.exit(0))
  process.send?.({ ready: true })
}

/** Where the two processes run when not both on 127.0.0.1: each in a network namespace, the receiver on an address of its own. */
export interface StreamHosts {
  readonly senderNs: string
  readonly receiverNs: string
  readonly receiverHost: string
}

// One receiver process and one sender process, both fresh: a warm-up, then `runs` timed transfers.
async function measurePair(bytes: number, encryption: BenchEncryption, runs: number, hosts?: StreamHosts): Promise<{ times: number[]; cpuMs: number }> {
  const self = fileURLToPath(import.meta.url)
  const spawn = (flag: string): ChildProcess => {
    if (hosts === undefined) return fork(self, [flag, encryption], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    // `ip netns exec` execs node in the namespace, with the IPC channel's descriptor and environment.
    const ns = flag === RECEIVER_FLAG ? hosts.receiverNs : hosts.senderNs
    return spawnProcess('ip', ['netns', 'exec', ns, process.execPath, self, flag, encryption, hosts.receiverHost], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
  }
  const receiver = spawn(RECEIVER_FLAG)
  let sender: ChildProcess | undefined
  const timer = setTimeout(() => {
    receiver.kill('SIGKILL')
    sender?.kill('SIGKILL')
  }, TIMEOUT_MS)
  try {
    const { addr } = await nextMessage<{ addr: string }>(receiver, 'addr')
    const s = spawn(SENDER_FLAG)
    sender = s
    await nextMessage(s, 'ready')
    const warmed = nextMessage(s, 'warmed')
    s.send({ addr, bytes, runs })
    await warmed
    const r0 = await childCpuMs(receiver)
    const result = nextMessage<{ times: number[]; cpuMs: number }>(s, 'times')
    s.send({ go: true })
    const { times, cpuMs } = await result
    const receiverMs = (await childCpuMs(receiver)) - r0
    return { times, cpuMs: cpuMs + receiverMs }
  } finally {
    clearTimeout(timer)
    await stopChildren([sender, receiver])
  }
}

/**
 * Moves `bytes` over one libp2p stream between two processes on 127.0.0.1:
 * `pairs` (default 3) fresh pairs of processes, each timing `runs` (default
 * 3) transfers after a warm-up, and reports the median of all timed
 * transfers. Fresh pairs because on a small shared machine one pair of
 * processes can run a third slower than the next for its whole life (how
 * the scheduler places them), which repeating transfers within the pair
 * does not average out.
 */
export async function measureLibp2pStream(opts: {
  bytes: number
  encryption: BenchEncryption
  runs?: number
  pairs?: number
  /** Sender and receiver each in a network namespace (a devnet of hosts' link, e.g. shaped) instead of 127.0.0.1. */
  hosts?: StreamHosts
}): Promise<StreamResult> {
  if (!Number.isSafeInteger(opts.bytes) || opts.bytes <= 0) throw new RangeError('bytes must be a positive integer')
  const runs = opts.runs ?? 3
  const pairs = opts.pairs ?? 3
  if (!Number.isInteger(runs) || runs < 1) throw new RangeError('runs must be a positive integer')
  if (!Number.isInteger(pairs) || pairs < 1) throw new RangeError('pairs must be a positive integer')
  const times: number[] = []
  let cpuMs = 0
  for (let i = 0; i < pairs; i++) {
    const r = await measurePair(opts.bytes, opts.encryption, runs, opts.hosts)
    times.push(...r.times)
    cpuMs += r.cpuMs
  }
  times.sort((a, b) => a - b)
  const seconds = times[Math.floor(times.length / 2)] as number
  const mb = opts.bytes / 1e6
  return {
    mbPerSec: mb / seconds,
    seconds,
    cpuMsPerMB: cpuMs / (times.length * mb),
    range: { min: mb / (times[times.length - 1] as number), max: mb / (times[0] as number) },
  }
}

if ((process.argv[2] === RECEIVER_FLAG || process.argv[2] === SENDER_FLAG) && process.send !== undefined) {
  const enc = process.argv[3] === 'tls' ? 'tls' : 'noise'
  const role = process.argv[2] === RECEIVER_FLAG ? 'receiver' : 'sender'
  const main = role === 'receiver' ? runReceiver(enc, process.argv[4]) : runSender(enc)
  main.catch((err: unknown) => {
    process.stderr.write(`libp2p-stream ${role} failed: ${String(err)}\n`)
    process.exit(1)
  })
}
