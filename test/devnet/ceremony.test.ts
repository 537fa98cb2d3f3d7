// The key ceremony of README "Running a real network", on a network of hosts
// (each organization in its own network namespace, src/devnet/hosts.ts):
// four organizations make their keys apart, one assembles the genesis from
// their cards, each installs it and starts; a fifth is admitted by vote and
// joins from the genesis; a key nobody admitted is refused. Needs root.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ApiClient, readDaemonEndpoint } from '../../src/api/index.js'
import { addHost, cliPath, hostAddressOf, hostsNetFor, namespaceOf, removeHosts } from '../../src/devnet/index.js'
import { sleep } from '../../src/util/index.js'
import { runCli } from '../integration/helpers/cli.js'
import { waitFor } from './helpers.js'

if (process.getuid?.() !== 0) {
  throw new Error('test/devnet/ceremony.test.ts needs root: it makes network namespaces for the organizations (run the suite as root, as .ci/run does)')
}

const root = await mkdtemp(join(tmpdir(), 'radchain-ceremony-'))
const net = hostsNetFor(root)
const children: ChildProcess[] = []
t.teardown(async () => {
  for (const c of children) c.kill('SIGTERM')
  await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : undefined)))
  await removeHosts(net).catch(() => undefined)
  await rm(root, { recursive: true, force: true })
})

interface Site {
  readonly id: string
  readonly index: number
  readonly dir: string
  readonly ns: string
  readonly addr: string
}

function site(index: number, id = `hosp-${index}`): Site {
  return { id, index, dir: join(root, id), ns: namespaceOf(net, `org${index}`), addr: `/ip4/${hostAddressOf(net, index)}/tcp/7461` }
}

/** `radchain init` for a site: keys, its id and name, listening on its own address (or `listen`). */
async function init(s: Site, listen = s.addr): Promise<string> {
  await addHost(net, `org${s.index}`, s.index)
  const r = await runCli([
    'init',
    '--dir',
    s.dir,
    '--org-id',
    s.id,
    '--name',
    `Hospital ${s.index}`,
    '--listen',
    listen,
    '--announce',
    s.addr,
    '--api-port',
    '0',
    '--json',
  ])
  if (r.code !== 0) throw new Error(`init ${s.id}: ${r.stderr}`)
  const card = await runCli(['keys', 'show', '--dir', s.dir, '--json'])
  if (card.code !== 0) throw new Error(`keys show ${s.id}: ${card.stderr}`)
  const file = join(root, `${s.id}.card.json`)
  await writeFile(file, card.stdout)
  return file
}

/** `radchain daemon` of a site, in its namespace; resolves once its API answers through the data dir. */
async function start(s: Site): Promise<ApiClient> {
  const log = openSync(join(s.dir, 'daemon.log'), 'a')
  const child = spawn('ip', ['netns', 'exec', s.ns, process.execPath, cliPath(), 'daemon', '--dir', s.dir], { stdio: ['ignore', log, log] })
  closeSync(log)
  children.push(child)
  return waitFor(`${s.id} up`, 60_000, async () => {
    if (child.exitCode !== null) throw new Error(`${s.id} exited: ${(await readFile(join(s.dir, 'daemon.log'), 'utf8')).slice(-400)}`)
    const c = new ApiClient(await readDaemonEndpoint(s.dir))
    await c.status()
    return c
  })
}

const founders = [1, 2, 3, 4].map((i) => site(i))
const clients: ApiClient[] = []
let genesisFile = ''

t.test('four organizations make their keys apart; the genesis is assembled from their cards and installed by each', async (t) => {
  const cards: string[] = []
  for (const s of founders) cards.push(await init(s))
  const card = JSON.parse(await readFile(cards[0] as string, 'utf8')) as { id: string; addrs: string[] }
  t.same([card.id, card.addrs], ['hosp-1', [founders[0]?.addr]], 'a card names the organization and the address the others dial')
  genesisFile = join(root, 'genesis.json')
  const g = await runCli(['genesis', 'new', '--chain-id', 'radchain-ceremony', '--org', ...cards, '--block-interval-ms', '500', '--out', genesisFile])
  t.equal(g.code, 0, g.stderr)
  for (const s of founders) {
    const r = await runCli(['genesis', 'install', genesisFile, '--dir', s.dir, '--json'])
    t.equal(r.code, 0, r.stderr)
    t.match(JSON.parse(r.stdout) as unknown, { chainId: 'radchain-ceremony', org: s.id, role: 'authority', orgs: 4 })
  }
})

t.test('each starts in its own namespace, and they finalize blocks', async (t) => {
  for (const s of founders) clients.push(await start(s))
  await waitFor('every founder at height 3 with 3 peers', 60_000, async () => {
    const st = await Promise.all(clients.map((c) => c.status()))
    return st.every((x) => x.height >= 3 && x.peers === 3)
  })
  const heads = await Promise.all(clients.map((c) => c.block('2')))
  t.equal(new Set(heads.map((b) => b.hash)).size, 1, 'one chain')
})

t.test('a fifth organization is admitted by vote and joins from the genesis', async (t) => {
  const s5 = site(5)
  const cardFile = await init(s5)
  const card = JSON.parse(await readFile(cardFile, 'utf8')) as { signKey: string; encKey: string; addrs: string[] }
  for (const s of founders.slice(0, 3)) {
    const v = await runCli(
      ['org', 'admit', s5.id, '--sign-key', card.signKey, '--enc-key', card.encKey, '--name', 'Hospital 5', '--addr', ...card.addrs, '--node', s.dir],
      { timeoutMs: 60_000 },
    )
    t.equal(v.code, 0, `${s.id} votes: ${v.stderr}`)
  }
  const inst = await runCli(['genesis', 'install', genesisFile, '--dir', s5.dir, '--json'])
  t.equal(inst.code, 0, inst.stderr)
  t.match(JSON.parse(inst.stdout) as unknown, { org: null }, 'not in the genesis: it joins by admission')
  const c5 = await start(s5)
  const target = (await (clients[0] as ApiClient).status()).height
  const st = await waitFor('org 5 synced and connected', 60_000, async () => {
    const x = await c5.status()
    return x.height >= target && x.peers >= 4 ? x : undefined
  })
  t.equal(st.orgId, s5.id, 'it knows itself admitted')
})

t.test('a key nobody admitted, dialing from another namespace, is refused; a node listening on loopback only says no one can reach it', async (t) => {
  const stranger = site(6, 'stranger')
  await init(stranger, '/ip4/127.0.0.1/tcp/7461')
  const inst = await runCli(['genesis', 'install', genesisFile, '--dir', stranger.dir])
  t.equal(inst.code, 0, inst.stderr)
  const c = await start(stranger)
  await sleep(8_000)
  // It keeps dialing: each attempt finishes its handshake on its side a moment before the member, checking its key,
  // closes it (seen once on a loaded machine as 1 peer). Let in, it would stay connected; refused, it is soon alone.
  await waitFor('the stranger alone', 10_000, async () => (await c.status()).peers === 0)
  t.pass('no organization lets it in')
  const st = await c.status()
  t.equal(st.height, 0, 'and it learns nothing of the ledger')
  const founder = await (clients[0] as ApiClient).status()
  t.equal(founder.peers, 4, 'the members are connected to one another only')
  t.match(
    await readFile(join(stranger.dir, 'daemon.log'), 'utf8'),
    /p2p listens on this machine only, while other organizations are on other hosts/,
    'the loopback-only listener is warned about',
  )
  t.notMatch(await readFile(join(founders[0]?.dir as string, 'daemon.log'), 'utf8'), /p2p listens on this machine only/, 'a reachable one is not')
})
