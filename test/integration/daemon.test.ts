import t, { type Test } from 'tap'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noteTx, signTx } from '../../src/chain/index.js'
import { Ed25519Signer } from '../../src/crypto/index.js'
import { DATADIR_FILES, initDataDir } from '../../src/node/index.js'
import type { ApiClient, DaemonInfo, TxStatus } from '../../src/api/index.js'
import { exists } from '../../src/util/index.js'
import { DaemonProcess } from '../../src/devnet/index.js'
import { runCli } from './helpers/cli.js'

const SCRYPT = { N: 1024, r: 8, p: 1 }

async function newNode(t: Test): Promise<{ dir: string; daemon: DaemonProcess; chainId: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-it-'))
  const daemon = new DaemonProcess(dir)
  t.teardown(async () => {
    await daemon.kill()
    await rm(dir, { recursive: true, force: true })
  })
  const init = await initDataDir({ dir, dev: true, apiPort: 0, scrypt: SCRYPT, params: { blockIntervalMs: 500 } })
  return { dir, daemon, chainId: init.chainId as string }
}

/** Every transaction id in blocks 1..head, in order. */
async function allTxIds(client: ApiClient): Promise<{ ids: string[]; head: number }> {
  const head = (await client.status()).height
  const ids: string[] = []
  for (let h = 1; h <= head; h++) {
    const b = await client.block(String(h))
    // The node's own key publication (org.kem) is not what these tests count.
    for (const tx of b.txs as { hash: string; type: string }[]) if (tx.type !== 'org.kem') ids.push(tx.hash)
  }
  return { ids, head }
}

t.test('requests without the bearer token get 401', async (t) => {
  const { daemon } = await newNode(t)
  const client = await daemon.start()
  const url = (await client.status()).api
  for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: 'Basic abc' }] as Record<string, string>[]) {
    for (const path of ['/v1/status', '/v1/blocks/head', '/v1/events']) {
      const res = await fetch(url + path, { headers })
      t.equal(res.status, 401, `${path} with ${JSON.stringify(headers)}`)
      const body = (await res.json()) as { error: { code: string } }
      t.equal(body.error.code, 'API_UNAUTHORIZED')
    }
  }
  const res = await fetch(url + '/v1/notes', { method: 'POST', body: JSON.stringify({ text: 'x' }), headers: { 'content-type': 'application/json' } })
  t.equal(res.status, 401, 'a write without the token is refused')
  t.equal((await client.status()).mempool.size, 0, 'and nothing was admitted')
})

t.test('the daemon opens its chunk store under the data dir', async (t) => {
  const { dir, daemon } = await newNode(t)
  await daemon.start()
  t.ok((await stat(join(dir, 'chunks'))).isDirectory(), 'chunks/ created at start')
  t.equal(await daemon.stop(), 0)
})

t.test('the daemon serves its API on a 0600 Unix socket in the data dir, which the CLI prefers; the socket goes at stop', async (t) => {
  const { dir, daemon } = await newNode(t)
  await daemon.start()
  const infoPath = join(dir, DATADIR_FILES.daemon)
  const info = JSON.parse(await readFile(infoPath, 'utf8')) as DaemonInfo
  t.equal(info.socket, join(dir, DATADIR_FILES.apiSocket), 'daemon.json names the socket')
  const st = await stat(join(dir, DATADIR_FILES.apiSocket))
  t.ok(st.isSocket())
  t.equal(st.mode & 0o777, 0o600)
  // With the TCP address in daemon.json made useless, the CLI still gets in: through the socket.
  await writeFile(infoPath, JSON.stringify({ ...info, api: 'http://127.0.0.1:9' }))
  const r = await runCli(['status', '--node', dir, '--json'])
  t.equal(r.code, 0, r.stderr)
  t.match(JSON.parse(r.stdout) as unknown, { height: Number })
  await writeFile(infoPath, JSON.stringify(info))
  t.equal(await daemon.stop(), 0)
  t.notOk(await exists(join(dir, DATADIR_FILES.apiSocket)), 'no socket file left behind')
  const after = await runCli(['status', '--node', dir])
  t.equal(after.code, 1, 'a stopped daemon: one line and exit 1')
})

t.test('radchain org params: a vote changes the study bounds, shown by org ls; a lowered bound is refused', async (t) => {
  const { dir, daemon } = await newNode(t)
  await daemon.start()
  const ls = async (): Promise<Record<string, number>> => {
    const r = await runCli(['org', 'ls', '--node', dir, '--json'])
    t.equal(r.code, 0, `org ls: ${r.stderr}`)
    return (JSON.parse(r.stdout) as { params: Record<string, number> }).params
  }
  const before = await ls()
  t.same([before.maxStudyBytes, before.maxStudyChunks], [32 * 1024 ** 3, 32768], 'the defaults')
  // One authority: its vote is the quorum.
  const vote = await runCli(['org', 'params', '--max-study-bytes', '40GiB', '--max-study-chunks', '40960', '--node', dir, '--json'])
  t.equal(vote.code, 0, `org params: ${vote.stderr}`)
  t.equal((JSON.parse(vote.stdout) as TxStatus).status, 'final')
  const after = await ls()
  t.same([after.maxStudyBytes, after.maxStudyChunks], [40 * 1024 ** 3, 40960], 'in force')
  t.equal(after.chunkSize, before.chunkSize, 'the others unchanged')
  const text = await runCli(['org', 'ls', '--node', dir])
  t.match(text.stdout, /chain parameters in force:[\s\S]*maxStudyBytes\s+42949672960/, 'org ls shows them')

  const lowered = await runCli(['org', 'params', '--max-study-chunks', '100', '--node', dir])
  t.equal(lowered.code, 1)
  t.match(lowered.stderr, /params\.maxStudyChunks may only be raised.*\[TX_INVALID\]/, 'a lowered bound: refused, saying why')
  const none = await runCli(['org', 'params', '--node', dir])
  t.match([none.code, none.stderr], [1, /name at least one parameter.*\[CLI_BAD_ARGUMENT\]/])
  t.equal(await daemon.stop(), 0)
})

t.test('1,000 notes through the API and the CLI all become final, once each', async (t) => {
  const { dir, daemon, chainId } = await newNode(t)
  const client = await daemon.start()
  // 990 pre-signed notes from 10 senders, in batches, plus 10 through the CLI.
  const signers = Array.from({ length: 10 }, () => Ed25519Signer.generate().signer)
  const bytes: Uint8Array[] = []
  for (let n = 0; n < 99; n++)
    for (const s of signers) bytes.push(signTx(s, { chainId, type: noteTx.name, nonce: n, payload: { text: `api note ${n}` } }).bytes)
  const hashes: string[] = []
  for (let i = 0; i < bytes.length; i += 110) {
    for (const r of await client.submitTxs(bytes.slice(i, i + 110))) {
      if ('error' in r) t.fail(`refused: ${r.error.code}`)
      else hashes.push(r.hash)
    }
  }
  const cliRuns = await Promise.all(Array.from({ length: 10 }, (_, i) => runCli(['tx', 'note', `cli note ${i}`, '--node', dir, '--json'])))
  for (const r of cliRuns) {
    t.equal(r.code, 0, `cli exit 0 ${r.stderr}`)
    const s = JSON.parse(r.stdout) as TxStatus
    t.equal(s.status, 'final')
    hashes.push(s.hash)
  }
  t.equal(hashes.length, 1000)
  let final = 0
  for (const h of hashes) if ((await client.tx(h, 20_000)).status === 'final') final++
  t.equal(final, 1000, 'all 1,000 final')
  const { ids } = await allTxIds(client)
  t.equal(new Set(ids).size, ids.length, 'no transaction appears twice on the chain')
  const onChain = new Set(ids)
  t.ok(
    hashes.every((h) => onChain.has(h)),
    'every note is in a block',
  )
  t.equal(ids.length, 1000, 'and nothing else is')
  t.equal(await daemon.stop(), 0, 'SIGTERM shuts the daemon down cleanly')
})

t.test('kill -9 under load: restart continues from the last final block, nothing final lost or duplicated', async (t) => {
  const { daemon, chainId } = await newNode(t)
  let client = await daemon.start()
  const signers = Array.from({ length: 4 }, () => Ed25519Signer.generate().signer)
  const perSender = 3000
  const streams = signers.map((s) =>
    Array.from({ length: perSender }, (_, n) => signTx(s, { chainId, type: noteTx.name, nonce: n, payload: { text: `load ${n}` } })),
  )
  const acked: { hash: string; height: number; index: number }[] = []
  let killed = false
  let stopKill: () => void = () => {}
  const killNow = new Promise<void>((resolve) => {
    stopKill = resolve
  })
  // Each sender's notes go in order, 50 at a time; the status of the last of
  // each batch is awaited, and everything the API reported final is kept.
  const load = streams.map(async (txs) => {
    for (let i = 0; i < txs.length && !killed; i += 50) {
      const batch = txs.slice(i, i + 50)
      try {
        await client.submitTxs(batch.map((x) => x.bytes))
        for (const x of batch) {
          const s = await client.tx(Buffer.from(x.id).toString('hex'), 5000)
          if (s.status === 'final') acked.push({ hash: s.hash, height: s.height as number, index: s.index as number })
        }
      } catch {
        return
      }
      if (acked.length >= 1500) stopKill()
    }
  })
  await Promise.race([killNow, Promise.all(load)])
  t.ok(daemon.running, 'daemon still running when the kill comes')
  killed = true
  await daemon.kill()
  await Promise.all(load)
  t.ok(acked.length >= 1500, `${acked.length} transactions acknowledged final before the kill`)
  const maxAckedHeight = Math.max(...acked.map((a) => a.height))

  client = await daemon.start()
  const after = await client.status()
  t.ok(after.height >= maxAckedHeight, `restart resumes at ${after.height}, at or above the last acknowledged ${maxAckedHeight}`)
  for (const a of acked) {
    const s = await client.tx(a.hash)
    if (s.status !== 'final' || s.height !== a.height || s.index !== a.index) {
      t.fail(`acknowledged ${a.hash} at ${a.height}/${a.index} is now ${s.status} ${s.height}/${s.index}`)
      return
    }
  }
  t.pass(`all ${acked.length} acknowledged transactions are final at the same place`)

  // The chain goes on: each sender resumes from its next nonce on the ledger.
  const { ids } = await allTxIds(client)
  t.equal(new Set(ids).size, ids.length, 'no transaction appears twice')
  const onChain = new Set(ids)
  const resumed: string[] = []
  for (const txs of streams) {
    const next = txs.findIndex((x) => !onChain.has(Buffer.from(x.id).toString('hex')))
    t.ok(
      txs.slice(0, next).every((x) => onChain.has(Buffer.from(x.id).toString('hex'))),
      'each sender has a contiguous run of nonces on chain',
    )
    const more = txs.slice(next, next + 10)
    for (const r of await client.submitTxs(more.map((x) => x.bytes))) {
      if ('error' in r) t.fail(`resubmission refused: ${r.error.code} ${r.error.message}`)
      else resumed.push(r.hash)
    }
  }
  const finals = await Promise.all(resumed.map((h) => client.tx(h, 20_000)))
  t.ok(
    finals.every((s) => s.status === 'final' && (s.height as number) > after.height - 1),
    'new transactions become final after the restart',
  )
  const end = await allTxIds(client)
  t.equal(new Set(end.ids).size, end.ids.length, 'still no duplicates')
  t.equal(await daemon.stop(), 0)
})
