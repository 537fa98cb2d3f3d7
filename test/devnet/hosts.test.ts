// A devnet of hosts: each organization in its own network namespace with its
// own address, its uplink shaped (docs/ARCHITECTURE.md "Tests"; README
// "A network of hosts on this machine"). Needs root and iproute2, as CI has;
// anywhere else it fails saying so.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { connect } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { clientOf, devnetDown, hostsNetFor, loadManifest, namespaceOf, pidOf, uplinkQdisc, type DevnetManifest } from '../../src/devnet/index.js'
import { generateCtStudy } from '../../src/study/index.js'
import { assertOneLineError, runCli } from '../integration/helpers/cli.js'
import { maxHeight, org, waitFor } from './helpers.js'

if (process.getuid?.() !== 0) {
  throw new Error('test/devnet/hosts.test.ts needs root: it makes network namespaces, a bridge and shaped links (run the suite as root, as .ci/run does)')
}

const dir = await mkdtemp(join(tmpdir(), 'radchain-devnet-hosts-'))
const net = hostsNetFor(dir)
t.teardown(async () => {
  await devnetDown(dir, true).catch(() => undefined)
  await rm(dir, { recursive: true, force: true })
})
// Killed before the teardown (a tap timeout): its daemons and namespaces go on the way out.
process.once('exit', () => {
  for (const ns of execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n')) {
    const name = ns.trim().split(/\s+/)[0] ?? ''
    if (!name.startsWith(`rc-${net.tag}-`)) continue
    for (const pid of execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8' })
      .split('\n')
      .filter((p) => p.trim() !== ''))
      try {
        process.kill(Number(pid), 'SIGKILL')
      } catch {
        // gone
      }
    execFileSync('ip', ['netns', 'delete', name])
  }
  try {
    execFileSync('ip', ['link', 'delete', net.bridge], { stdio: 'ignore' })
  } catch {
    // none
  }
})

/** This devnet's namespaces and host-side links that exist. */
function leftovers(): string[] {
  const ns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
  const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })
  return [...ns.split('\n'), ...links.split('\n')].filter((l) => l.includes(net.tag)).map((l) => l.trim().slice(0, 60))
}

/** Whether a TCP connection to host:port opens within 2 s. */
function opens(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port, timeout: 2_000 })
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('timeout', () => {
      s.destroy()
      resolve(false)
    })
    s.once('error', () => resolve(false))
  })
}

let m: DevnetManifest

t.test('devnet up --hosts: an address and a namespace each, shaped uplinks, nothing on the machine loopback', async (t) => {
  const up = await runCli(['devnet', 'up', '--orgs', '3', '--hosts', '--link-mbit', '100,org3=40', '--dir', dir, '--base-port', '6600', '--json'], {
    timeoutMs: 120_000,
  })
  t.equal(up.code, 0, up.stderr)
  const out = JSON.parse(up.stdout) as { orgs: { org: string; host: string; netns: string; linkMbit: number; height: number }[] }
  t.same(
    out.orgs.map((o) => [o.org, o.host, o.netns, o.linkMbit]),
    [
      ['org1', `${net.subnet}.2`, namespaceOf(net, 'org1'), 100],
      ['org2', `${net.subnet}.3`, namespaceOf(net, 'org2'), 100],
      ['org3', `${net.subnet}.4`, namespaceOf(net, 'org3'), 40],
    ],
  )
  m = await loadManifest(dir)
  t.match(await uplinkQdisc(net, 'org3'), /tbf .*rate 40Mbit/, 'org3 uplink shaped to 40 Mbit/s')
  t.match(await uplinkQdisc(net, 'org1'), /rate 100Mbit/)
  const genesis = JSON.parse(execFileSync('cat', [join(dir, 'genesis.json')], { encoding: 'utf8' })) as { orgs: { addrs: string[] }[] }
  t.same(
    genesis.orgs.map((o) => o.addrs),
    m.orgs.map((o) => [`/ip4/${o.host}/tcp/${o.p2pPort}`]),
    'the genesis names each organization by its own address',
  )
  for (const o of m.orgs) {
    t.notOk(await opens('127.0.0.1', o.apiPort), `${o.id}: no API on the machine's loopback`)
    t.notOk(await opens('127.0.0.1', o.p2pPort), `${o.id}: no p2p listener on the machine's loopback`)
  }
  t.ok(
    out.orgs.every((o) => o.height >= 2),
    'blocks are final: the namespaces reach each other',
  )
})

t.test('CLI commands with --node reach each daemon through its data dir; a study replicates across the namespaces', async (t) => {
  const o1 = org(m, 'org1')
  const st = await runCli(['status', '--node', o1.dir, '--json'])
  t.equal(st.code, 0, st.stderr)
  t.equal((JSON.parse(st.stdout) as { peers: number }).peers, 2)
  const input = await mkdtemp(join(tmpdir(), 'radchain-hosts-input-'))
  t.teardown(() => rm(input, { recursive: true, force: true }))
  await generateCtStudy({ slices: 8, rows: 256, cols: 256, out: input, seed: 3 })
  const add = await runCli(['study', 'add', input, '--node', o1.dir, '--json'], { timeoutMs: 120_000 })
  t.equal(add.code, 0, add.stderr)
  const sid = (JSON.parse(add.stdout) as { studyId: string }[])[0]?.studyId as string
  t.ok(sid, 'a study id')
  for (const id of ['org2', 'org3']) {
    const o = org(m, id)
    await waitFor(`${id} holds the study`, 60_000, async () => {
      const r = await runCli(['study', 'show', sid, '--node', o.dir, '--json'])
      return r.code === 0 && (JSON.parse(r.stdout) as { local: { complete: boolean } }).local.complete
    })
    t.pass(`${id} holds a complete copy, fetched over its shaped link`)
  }
})

t.test('partition, heal, kill and start work on namespaced organizations', async (t) => {
  const [o1, o2, o3] = m.orgs as [(typeof m.orgs)[0], (typeof m.orgs)[0], (typeof m.orgs)[0]]
  const p = await runCli(['devnet', 'partition', 'org1', '--from', 'org2', 'org3', '--dir', dir])
  t.equal(p.code, 0, p.stderr)
  await waitFor('org1 alone', 30_000, async () => (await (await clientOf(o1)).status()).peers === 0)
  const heal = await runCli(['devnet', 'heal', '--dir', dir])
  t.equal(heal.code, 0, heal.stderr)
  await waitFor('org1 back with both', 30_000, async () => (await (await clientOf(o1)).status()).peers === 2)
  const kill = await runCli(['devnet', 'kill', 'org2', '--dir', dir])
  t.equal(kill.code, 0, kill.stderr)
  t.equal(await pidOf(o2), undefined)
  const start = await runCli(['devnet', 'start', 'org2', '--dir', dir], { timeoutMs: 60_000 })
  t.equal(start.code, 0, start.stderr)
  const h = await maxHeight([o1, o3])
  await waitFor('org2 catches up and the three finalize', 60_000, async () => (await maxHeight([o2])) >= h + 2)
})

t.test('a crashed run leaves nothing a following up trips over; down removes namespaces, links and bridge', async (t) => {
  for (const o of m.orgs) {
    const pid = await pidOf(o)
    if (pid !== undefined) process.kill(pid, 'SIGKILL')
  }
  await waitFor('every daemon gone', 10_000, async () => (await Promise.all(m.orgs.map((o) => pidOf(o)))).every((p) => p === undefined))
  t.ok(leftovers().length > 0, 'the namespaces outlive the daemons')
  const again = await runCli(['devnet', 'up', '--orgs', '3', '--dir', dir, '--json'], { timeoutMs: 120_000 })
  t.equal(again.code, 0, again.stderr)
  t.match(await uplinkQdisc(net, 'org3'), /rate 40Mbit/, 'the recorded shaping is applied again')
  const down = await runCli(['devnet', 'down', '--dir', dir])
  t.equal(down.code, 0, down.stderr)
  t.same(leftovers(), [], 'no namespace, link or bridge of the devnet is left')
})

t.test('--link-mbit without --hosts, or naming no organization, fails in one line', async (t) => {
  const other = await mkdtemp(join(tmpdir(), 'radchain-devnet-nohosts-'))
  t.teardown(() => rm(other, { recursive: true, force: true }))
  const r = await runCli(['devnet', 'up', '--orgs', '2', '--link-mbit', '100', '--dir', other])
  assertOneLineError(t, r, /--hosts/, 'link-mbit without hosts', 'CLI_BAD_ARGUMENT')
  const bad = await runCli(['devnet', 'up', '--orgs', '2', '--hosts', '--link-mbit', 'org7=100', '--dir', other])
  assertOneLineError(t, bad, /org7/, 'an unknown organization', 'DEVNET_BAD_ORG')
})
