// The key ceremony's commands without daemons: init with addresses, the card
// from keys show, genesis new and genesis install, and their refusals (the
// whole ceremony on a network of hosts is test/devnet/ceremony.test.ts).
import t from 'tap'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { assertOneLineError, exists, runCli } from './helpers/cli.js'

const root = await mkdtemp(join(tmpdir(), 'radchain-genesis-cli-'))
t.teardown(() => rm(root, { recursive: true, force: true }))
const env = { RADCHAIN_PASSPHRASE: 'genesis-cli test passphrase' }

async function org(id: string, announce: string): Promise<{ dir: string; card: string }> {
  const dir = join(root, id)
  const r = await runCli(['init', '--dir', dir, '--org-id', id, '--name', `Org ${id}`, '--listen', '/ip4/0.0.0.0/tcp/7461', '--announce', announce], { env })
  if (r.code !== 0) throw new Error(r.stderr)
  const k = await runCli(['keys', 'show', '--dir', dir, '--json'])
  const card = join(root, `${id}.json`)
  await writeFile(card, k.stdout)
  return { dir, card }
}

t.test('init with addresses; keys show prints the card; genesis new and install', async (t) => {
  const a = await org('hosp-a', '/dns4/a.example/tcp/7461')
  const b = await org('hosp-b', '/ip4/192.0.2.7/tcp/7461')
  const card = JSON.parse(await readFile(a.card, 'utf8')) as Record<string, unknown>
  t.match(card, {
    id: 'hosp-a',
    name: 'Org hosp-a',
    role: 'authority',
    signKey: /^[0-9a-f]{64}$/,
    encKey: /^[0-9a-f]{64}$/,
    addrs: ['/dns4/a.example/tcp/7461'],
  })
  const out = join(root, 'genesis.json')
  const g = await runCli([
    'genesis',
    'new',
    '--chain-id',
    'radchain-test-1',
    '--org',
    a.card,
    b.card,
    '--member',
    'hosp-b',
    '--replication-factor',
    '2',
    '--out',
    out,
  ])
  t.equal(g.code, 0, g.stderr)
  const genesis = JSON.parse(await readFile(out, 'utf8')) as { chainId: string; params: { replicationFactor: number }; orgs: { id: string; role: string }[] }
  t.same(
    genesis.orgs.map((o) => [o.id, o.role]),
    [
      ['hosp-a', 'authority'],
      ['hosp-b', 'member'],
    ],
  )
  t.equal(genesis.params.replicationFactor, 2)
  const inst = await runCli(['genesis', 'install', out, '--dir', a.dir, '--json'])
  t.equal(inst.code, 0, inst.stderr)
  t.match(JSON.parse(inst.stdout) as unknown, { chainId: 'radchain-test-1', org: 'hosp-a', role: 'authority', orgs: 2 })
  t.equal((await runCli(['genesis', 'install', out, '--dir', a.dir])).code, 0, 'installing the same genesis again changes nothing')
  const printed = await runCli(['genesis', 'new', '--chain-id', 'radchain-test-2', '--org', a.card, b.card])
  t.equal(printed.code, 0, printed.stderr)
  const other = join(root, 'other.json')
  await writeFile(other, printed.stdout)
  const again = await runCli(['genesis', 'install', other, '--dir', a.dir])
  assertOneLineError(t, again, /already has the genesis of radchain-test-1/, 'another network over an installed genesis', 'CLI_BAD_ARGUMENT')
})

t.test('refusals name the file and the field', async (t) => {
  const local = await org('local-c', '/ip4/127.0.0.1/tcp/7461')
  const d = await org('hosp-d', '/dns4/d.example/tcp/7461')
  const r = await runCli(['genesis', 'new', '--chain-id', 'x', '--org', d.card, local.card])
  assertOneLineError(t, r, /local-c\.json: addrs\.0: \/ip4\/127\.0\.0\.1\/tcp\/7461 is this machine only/, 'a loopback card', 'CLI_BAD_ARGUMENT')
  const ok = await runCli(['genesis', 'new', '--chain-id', 'x', '--org', d.card, local.card, '--allow-loopback'])
  t.equal(ok.code, 0, '--allow-loopback accepts it')
  const twice = await runCli(['genesis', 'new', '--chain-id', 'x', '--org', d.card, d.card])
  assertOneLineError(t, twice, /have the same organization id \(hosp-d\)/, 'the same card twice', 'GENESIS_INVALID')
  const broken = join(root, 'broken.json')
  await writeFile(broken, JSON.stringify({ ...(JSON.parse(await readFile(d.card, 'utf8')) as object), encKey: 'abc' }))
  assertOneLineError(
    t,
    await runCli(['genesis', 'new', '--chain-id', 'x', '--org', broken]),
    /broken\.json: encKey: expected 32 bytes of hex/,
    'a bad key',
    'GENESIS_INVALID',
  )
  assertOneLineError(
    t,
    await runCli(['genesis', 'new', '--chain-id', 'x', '--org', join(root, 'missing.json')]),
    /missing\.json/,
    'a missing card',
    'CLI_BAD_ARGUMENT',
  )
  assertOneLineError(
    t,
    await runCli(['genesis', 'new', '--chain-id', 'x', '--org', d.card, '--member', 'nobody']),
    /--member nobody/,
    'an unknown member',
    'CLI_BAD_ARGUMENT',
  )
  const bad = await runCli(['init', '--dir', join(root, 'bad'), '--announce', 'radchain.example:7461'], { env })
  assertOneLineError(t, bad, /p2p\.announce\.0: a multiaddr/, 'an address that is not a multiaddr', 'CONFIG_INVALID')
  t.notOk(await exists(join(root, 'bad', 'keystore.json')), 'and nothing is left of that init')
})
