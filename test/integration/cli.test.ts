import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DaemonProcess, cliPath, devnetDaemonPath } from '../../src/devnet/index.js'
import { assertOneLineError, exists, jsonOf, linesOf, runCli, snapshot, tempDir, type CliResult } from './helpers/cli.js'

// Runs the built CLI (dist/bin/radchain.js) as a user would: build first with `npx tsc -p .`.

const HEX32 = /^[0-9a-f]{64}$/

// DaemonProcess passes the test's environment on; keep the caller's RADCHAIN_* out of it.
for (const k of Object.keys(process.env)) if (k.startsWith('RADCHAIN_')) delete process.env[k]

interface InitOut {
  dir: string
  signKey: string
  encKey: string
  chainId: string | null
  passphraseFile: string | null
}
interface ErrorOut {
  error: { code: string; message: string }
}

t.ok(existsSync(cliPath()), `the CLI is built at ${cliPath()} (run \`npx tsc -p .\`)`)

function ok(t: Test, r: CliResult, what: string): void {
  t.equal(r.code, 0, `${what}: exit code 0`, { stderr: r.stderr })
  t.equal(r.stderr, '', `${what}: nothing on stderr`)
}

async function mode(p: string): Promise<number> {
  return (await stat(p)).mode & 0o777
}

async function initDev(t: Test, dir: string): Promise<InitOut> {
  const r = await runCli(['init', '--dev', '--dir', dir, '--api-port', '0', '--json'])
  ok(t, r, 'init --dev')
  return jsonOf<InitOut>(t, r)
}

t.test('init --dev creates a complete data dir, and a second init changes nothing', async (t) => {
  const tmp = await tempDir(t)
  const dir = join(tmp, 'node')
  const r = await runCli(['init', '--dev', '--dir', dir, '--api-port', '0', '--json'], { env: { RADCHAIN_HOME: join(tmp, 'elsewhere') } })
  ok(t, r, 'init')
  const out = jsonOf<InitOut>(t, r)
  t.match(out, { dir, signKey: HEX32, encKey: HEX32, chainId: /^radchain-dev-[0-9a-f]+$/, passphraseFile: join(dir, 'passphrase') })
  t.notOk(await exists(join(tmp, 'elsewhere')), '--dir wins over RADCHAIN_HOME')

  t.same((await readdir(dir)).sort(), ['config.json', 'genesis.json', 'keystore.json', 'passphrase'])
  t.equal(await mode(dir), 0o700, 'data dir is 0700')
  t.equal(await mode(join(dir, 'passphrase')), 0o600, 'passphrase is 0600')
  t.equal(await mode(join(dir, 'keystore.json')), 0o600, 'keystore is 0600')

  const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as { api: { port: number } }
  t.equal(config.api.port, 0, '--api-port 0 is recorded')
  const genesis = JSON.parse(await readFile(join(dir, 'genesis.json'), 'utf8')) as {
    chainId: string
    orgs: { role: string; signKey: string; encKey: string }[]
  }
  t.equal(genesis.chainId, out.chainId)
  t.match(genesis.orgs, [{ role: 'authority', signKey: out.signKey, encKey: out.encKey }])
  t.equal(genesis.orgs.length, 1)

  const passphrase = (await readFile(join(dir, 'passphrase'), 'utf8')).trim()
  t.ok(passphrase.length >= 32, 'a long random passphrase')
  const keystore = await readFile(join(dir, 'keystore.json'), 'utf8')
  t.notOk(keystore.includes(passphrase), 'the keystore does not contain the passphrase')
  t.match(JSON.parse(keystore), { publicKeys: { sign: out.signKey, enc: out.encKey } })

  const before = await snapshot(dir)
  const again = await runCli(['init', '--dev', '--dir', dir, '--api-port', '0', '--json'])
  assertOneLineError(t, again, /already holds a radchain node/, 'second init --dev')
  t.equal(jsonOf<ErrorOut>(t, again).error.code, 'CONFIG_EXISTS')
  t.same(await snapshot(dir), before, 'files byte-identical after a second init')

  // Same, with the dir from RADCHAIN_HOME and a genesis that would be valid.
  const viaHome = await runCli(['init', '--genesis', join(dir, 'genesis.json')], { env: { RADCHAIN_HOME: dir } })
  assertOneLineError(t, viaHome, /already holds a radchain node/, 'second init via RADCHAIN_HOME', 'CONFIG_EXISTS')
  t.same(await snapshot(dir), before, 'files byte-identical after an init via RADCHAIN_HOME')

  t.test('keys show prints the keys init made', async (t) => {
    // The organization's card: its keys, the addresses the others dial (the listen address here), and its id (org1, as in its --dev genesis).
    const want = { id: 'org1', name: null, role: 'authority', signKey: out.signKey, encKey: out.encKey, addrs: [] as string[] }
    const byDir = await runCli(['keys', 'show', '--dir', dir, '--json'])
    ok(t, byDir, 'keys show --dir')
    const card = jsonOf<typeof want>(t, byDir)
    t.same({ ...card, addrs: [] }, want)
    t.equal(card.addrs.length, 1, 'one address: the listen address')
    const byHome = await runCli(['keys', 'show', '--json'], { env: { RADCHAIN_HOME: dir } })
    ok(t, byHome, 'keys show (RADCHAIN_HOME)')
    t.same(jsonOf(t, byHome), card)
    const text = await runCli(['keys', 'show', '--node', dir])
    ok(t, text, 'keys show --node')
    t.match(text.stdout, out.signKey)
    t.match(text.stdout, out.encKey)
    const none = await runCli(['keys', 'show', '--dir', join(tmp, 'nothing-here')])
    assertOneLineError(t, none, /radchain init/, 'keys show on an empty dir', 'CONFIG_NOT_FOUND')
    t.notOk(await exists(join(tmp, 'nothing-here')), 'keys show creates nothing')
  })
})

t.test('init with RADCHAIN_PASSPHRASE writes no passphrase file', async (t) => {
  const home = join(await tempDir(t), 'home')
  const secret = 'correct horse battery staple, 2024'
  const r = await runCli(['init', '--dev', '--api-port', '0', '--json'], { env: { RADCHAIN_HOME: home, RADCHAIN_PASSPHRASE: secret } })
  ok(t, r, 'init')
  t.match(jsonOf<InitOut>(t, r), { dir: home, passphraseFile: null })
  t.same((await readdir(home)).sort(), ['config.json', 'genesis.json', 'keystore.json'])
  t.notOk((await readFile(join(home, 'keystore.json'), 'utf8')).includes(secret), 'the keystore does not contain the passphrase')
})

t.test('init with a bad genesis or bad options creates nothing', async (t) => {
  const tmp = await tempDir(t)
  const good = await initDev(t, join(tmp, 'source'))
  const genesis = JSON.parse(await readFile(join(tmp, 'source', 'genesis.json'), 'utf8')) as Record<string, unknown>
  await writeFile(join(tmp, 'invalid.json'), '{"chainId": "x", ')
  await writeFile(join(tmp, 'no-orgs.json'), JSON.stringify({ ...genesis, orgs: [] }))
  await writeFile(join(tmp, 'good.json'), JSON.stringify(genesis))

  const cases: [string, string[], RegExp][] = [
    ['missing genesis file', ['--genesis', join(tmp, 'missing.json')], /missing\.json/],
    ['genesis is not JSON', ['--genesis', join(tmp, 'invalid.json')], /not valid JSON/],
    ['genesis with orgs: []', ['--genesis', join(tmp, 'no-orgs.json')], /orgs/],
    ['both --dev and --genesis', ['--dev', '--genesis', join(tmp, 'good.json')], /--dev or --genesis/],
    ['bad --api-port', ['--dev', '--api-port', 'eighty'], /--api-port/],
    ['bad --org-id', ['--dev', '--org-id', 'Org One'], /organization id/],
  ]
  // Each case in its own dirs, all at once: the CLI runs are independent.
  await Promise.all(
    cases.map(async ([what, args, match], i) => {
      const dir = join(tmp, `target-${i}`)
      const r = await runCli(['init', '--dir', dir, ...args])
      assertOneLineError(t, r, match, what)
      t.notOk(await exists(dir), `${what}: the target dir was not created`)

      // Into an existing empty dir: it stays, and stays empty.
      const empty = join(tmp, `empty-${i}`)
      await mkdir(empty, { recursive: true })
      const r2 = await runCli(['init', '--dir', empty, ...args])
      assertOneLineError(t, r2, match, `${what} (existing dir)`)
      t.same(await readdir(empty), [], `${what}: an existing dir is left empty`)
    }),
  )

  // The same genesis, unbroken, is accepted: joins the chain rather than making one.
  const joined = await runCli(['init', '--dir', join(tmp, 'joiner'), '--genesis', join(tmp, 'good.json'), '--api-port', '0', '--json'])
  ok(t, joined, 'init --genesis good.json')
  const out = jsonOf<InitOut>(t, joined)
  t.equal(out.chainId, good.chainId, 'the joiner is on the same chain')
  t.not(out.signKey, good.signKey, 'with its own keys')
})

t.test('daemon refuses a data dir it cannot use, quickly and in one line', async (t) => {
  const tmp = await tempDir(t)
  const base = join(tmp, 'base')
  await initDev(t, base)
  const copy = async (name: string): Promise<string> => {
    const d = join(tmp, name)
    await cp(base, d, { recursive: true })
    return d
  }

  const check = async (what: string, dir: string, match: RegExp, env: Record<string, string> = {}): Promise<void> => {
    const before = await snapshot(dir)
    const r = await runCli(['daemon', '--dir', dir], { env, timeoutMs: 40_000 })
    assertOneLineError(t, r, match, what)
    // About a second on an idle machine; a fresh-clone CI run beside the viewer test took 10-11 s. A daemon that
    // does not fail is killed at 40 s, and its missing one-line error fails the check above.
    t.ok(r.ms < 25_000, `${what}: fails within seconds (${r.ms} ms)`)
    t.same(await snapshot(dir), before, `${what}: the data dir is unchanged (no db, token or daemon.json)`)
  }

  // Each broken data dir is prepared, then the daemons are tried all at once (independent runs).
  const wrongPass = await copy('wrong-pass')

  const noPass = await copy('no-pass')
  await rm(join(noPass, 'passphrase'))

  const badKeystore = await copy('bad-keystore')
  await truncate(join(badKeystore, 'keystore.json'), 100)

  const emptyKeystore = await copy('empty-keystore')
  await truncate(join(emptyKeystore, 'keystore.json'), 0)

  const badGenesis = await copy('bad-genesis')
  await truncate(join(badGenesis, 'genesis.json'), 100)

  const badConfig = await copy('bad-config')
  await writeFile(join(badConfig, 'config.json'), '{"api": {"port": "x"}}')

  // Fault injection is the devnet's: a production daemon refuses a config that carries it.
  const withTesting = await copy('with-testing')
  const cfg = JSON.parse(await readFile(join(withTesting, 'config.json'), 'utf8')) as Record<string, unknown>
  await writeFile(join(withTesting, 'config.json'), JSON.stringify({ ...cfg, testing: { serveGarbage: true } }))

  const noGenesis = join(tmp, 'no-genesis')
  const r = await runCli(['init', '--dir', noGenesis, '--api-port', '0', '--json'])
  ok(t, r, 'init without --dev or --genesis')
  t.equal(jsonOf<InitOut>(t, r).chainId, null, 'no chain yet')
  t.notOk(await exists(join(noGenesis, 'genesis.json')))

  const empty = join(tmp, 'empty')
  await mkdir(empty)

  await Promise.all([
    check('wrong passphrase', wrongPass, /wrong passphrase/, { RADCHAIN_PASSPHRASE: 'wrong' }),
    check('missing passphrase file', noPass, /passphrase/),
    check('truncated keystore', badKeystore, /keystore/),
    check('empty keystore', emptyKeystore, /keystore/),
    check('truncated genesis', badGenesis, /genesis\.json/),
    check('bad config', badConfig, /config\.json.*api\.port/),
    check('a testing section in the config', withTesting, /config\.json: testing: fault injection is for devnet daemons only/),
    check('no genesis', noGenesis, /copy the network's genesis\.json there, or run `radchain init --dev`/),
    check('no node at all', empty, /run `radchain init`/),
  ])
})

t.test('the devnet daemon entry refuses a data dir that is not a devnet organization', async (t) => {
  const tmp = await tempDir(t)
  const prod = join(tmp, 'prod')
  await initDev(t, prod)
  // Fault switches beside a production data dir must not take effect, nor the partition route appear.
  await writeFile(join(prod, 'faults.json'), JSON.stringify({ serveGarbage: true }))
  const before = await snapshot(prod)
  const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const p = spawn(process.execPath, [devnetDaemonPath(), '--dir', prod], { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH ?? '' } })
    let stderr = ''
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    const timer = setTimeout(() => p.kill('SIGKILL'), 20_000)
    p.once('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stderr })
    })
  })
  t.equal(r.code, 1, 'exit code 1')
  t.match(r.stderr, /is not an organization of a devnet/)
  t.same(await snapshot(prod), before, 'the data dir is unchanged (no db, token or daemon.json)')

  // A devnet manifest that names a data dir outside the devnet folder is refused before anything starts.
  const fake = join(tmp, 'fake-devnet')
  await mkdir(fake)
  const keys = JSON.parse(await readFile(join(prod, 'keystore.json'), 'utf8')) as { publicKeys: { sign: string; enc: string } }
  const org = { id: 'org1', dir: prod, apiPort: 0, p2pPort: 0, signKey: keys.publicKeys.sign, encKey: keys.publicKeys.enc }
  await writeFile(join(fake, 'devnet.json'), JSON.stringify({ chainId: 'radchain-devnet-x', orgs: [org], blocked: {} }))
  const start = await runCli(['devnet', 'start', 'org1', '--dir', fake])
  assertOneLineError(t, start, /not a devnet manifest: org1's data dir is not/, 'devnet start on a forged manifest')
  t.same(await snapshot(prod), before, 'the production data dir is still unchanged')
})

t.test('with a running daemon', async (t) => {
  const tmp = await mkdtemp(join(tmpdir(), 'radchain-cli-'))
  const dir = join(tmp, 'node')
  const daemon = new DaemonProcess(dir)
  // One teardown, so the daemon is gone before its data dir is removed.
  t.teardown(async () => {
    await daemon.kill()
    await rm(tmp, { recursive: true, force: true })
  })
  const keys = await initDev(t, dir)
  await daemon.start()
  const info = JSON.parse(await readFile(join(dir, 'daemon.json'), 'utf8')) as { api: string; pid: number }
  t.equal(info.pid, daemon.pid)
  const url = info.api
  const token = (await readFile(join(dir, 'api.token'), 'utf8')).trim()
  let noteHash = ''
  let noteHeight = 0

  t.test('status', async (t) => {
    const r = await runCli(['status', '--json', '--node', dir])
    ok(t, r, 'status --json')
    const s = jsonOf(t, r)
    t.match(s, { chainId: keys.chainId, orgId: 'org1', role: 'authority', height: Number, headHash: HEX32, stateRoot: HEX32, peers: Number, api: url })
    const text = await runCli(['status', '--node', dir])
    ok(t, text, 'status')
    t.match(text.stdout, /^height\s+\d+$/m)
    t.match(text.stdout, new RegExp(`^api\\s+${url.replace(/[.]/g, '\\.')}$`, 'm'))
    const viaHome = await runCli(['status', '--json'], { env: { RADCHAIN_HOME: dir } })
    ok(t, viaHome, 'status with RADCHAIN_HOME')
    t.match(jsonOf(t, viaHome), { chainId: keys.chainId })
  })

  t.test('tx note waits until final; tx show finds it', async (t) => {
    const r = await runCli(['tx', 'note', 'hello', '--node', dir, '--json'])
    ok(t, r, 'tx note')
    const s = jsonOf<{ hash: string; status: string; height: number; tx: { type: string; sender: string; payload: { text: string } } }>(t, r)
    t.match(s, { hash: HEX32, status: 'final', height: Number, tx: { type: 'note', sender: keys.signKey, payload: { text: 'hello' } } })
    t.ok(s.height >= 1)
    noteHash = s.hash
    noteHeight = s.height

    const show = await runCli(['tx', 'show', noteHash, '--node', dir, '--json'])
    ok(t, show, 'tx show')
    t.match(jsonOf(t, show), { hash: noteHash, status: 'final', height: noteHeight })
    const text = await runCli(['tx', 'show', noteHash, '--node', dir])
    ok(t, text, 'tx show (text)')
    t.match(text.stdout, /^status\s+final$/m)

    const block = await runCli(['block', String(noteHeight), '--node', dir, '--json'])
    ok(t, block, 'block <height>')
    const b = jsonOf<{ height: number; txs: { hash: string }[] }>(t, block)
    t.equal(b.height, noteHeight)
    t.ok(
      b.txs.some((x) => x.hash === noteHash),
      'the block holds the note',
    )
  })

  t.test('tx show of unknown and malformed hashes', async (t) => {
    const unknown = 'ab'.repeat(32)
    const r = await runCli(['tx', 'show', unknown, '--node', dir, '--json'])
    t.equal(r.code, 1, 'unknown transaction: exit code 1')
    t.same(jsonOf(t, r), { hash: unknown, status: 'unknown' })
    const bad = await runCli(['tx', 'show', 'xyz', '--node', dir, '--json'])
    assertOneLineError(t, bad, /64 hex digits/, 'tx show xyz')
    t.equal(jsonOf<ErrorOut>(t, bad).error.code, 'API_BAD_REQUEST')
  })

  t.test('block head and a missing block', async (t) => {
    const r = await runCli(['block', 'head', '--node', dir, '--json'])
    ok(t, r, 'block head')
    const b = jsonOf<{ hash: string; height: number; certificate: { signers: string[] } }>(t, r)
    t.match(b, { hash: HEX32, height: Number })
    t.ok(b.height >= noteHeight, 'head is at or above the note')
    t.same(b.certificate.signers, [keys.signKey], 'certified by the one authority')
    const text = await runCli(['block', 'head', '--node', dir])
    ok(t, text, 'block head (text)')
    t.match(text.stdout, /^certificate\s+1 signature\(s\)/m)

    const missing = await runCli(['block', '99999999', '--node', dir, '--json'])
    assertOneLineError(t, missing, /no block 99999999/, 'block 99999999')
    t.equal(jsonOf<ErrorOut>(t, missing).error.code, 'API_NOT_FOUND')
  })

  t.test('tx note --no-wait returns pending; a bad --timeout is refused', async (t) => {
    const r = await runCli(['tx', 'note', 'later', '--no-wait', '--node', dir, '--json'])
    ok(t, r, 'tx note --no-wait')
    t.match(jsonOf(t, r), { hash: HEX32, status: 'pending' })
    const bad = await runCli(['tx', 'note', 'x', '--timeout', 'soon', '--node', dir])
    assertOneLineError(t, bad, /--timeout/, 'tx note --timeout soon', 'CLI_BAD_ARGUMENT')
  })

  t.test('--node <url> needs the right RADCHAIN_API_TOKEN', async (t) => {
    const none = await runCli(['status', '--node', url])
    assertOneLineError(t, none, /RADCHAIN_API_TOKEN/, 'URL without a token', 'CLI_NO_TOKEN')
    const wrong = await runCli(['status', '--node', url, '--json'], { env: { RADCHAIN_API_TOKEN: 'not-the-token' } })
    assertOneLineError(t, wrong, /token/, 'URL with a wrong token')
    t.equal(jsonOf<ErrorOut>(t, wrong).error.code, 'API_UNAUTHORIZED')
    const right = await runCli(['status', '--node', url + '/', '--json'], { env: { RADCHAIN_API_TOKEN: token } })
    ok(t, right, 'URL with the token')
    t.match(jsonOf(t, right), { chainId: keys.chainId })
    const show = await runCli(['tx', 'show', noteHash, '--node', url, '--json'], { env: { RADCHAIN_API_TOKEN: token } })
    ok(t, show, 'tx show via URL')
    t.match(jsonOf(t, show), { status: 'final' })
  })

  t.test('a production daemon has no partition route', async (t) => {
    const res = await fetch(`${url}/v1/admin/partition`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ blocked: ['ab'.repeat(32)] }),
    })
    t.equal(res.status, 404, 'POST /v1/admin/partition: 404')
    t.equal(((await res.json()) as ErrorOut).error.code, 'API_NOT_FOUND')
    const get = await fetch(`${url}/v1/admin/partition`, { headers: { authorization: `Bearer ${token}` } })
    t.equal(get.status, 404, 'GET /v1/admin/partition: 404 too (no such route, not a wrong method)')
    const junk = await fetch(`${url}/v1/admin/partition`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: '{',
    })
    t.equal(junk.status, 404, 'a malformed body: still 404, the body is never read')
    const s = await runCli(['status', '--node', dir, '--json'])
    ok(t, s, 'status after the refused partition')
    t.ok(jsonOf<{ peers: number }>(t, s).peers >= 0)
  })

  t.test('a second daemon on the same dir fails and leaves the first alone', async (t) => {
    const skip = ['db', 'daemon.log']
    const before = await snapshot(dir, skip)
    const r = await runCli(['daemon', '--dir', dir], { timeoutMs: 20_000 })
    assertOneLineError(t, r, /in use by another process/, 'second daemon', 'STORE_LOCKED')
    t.ok(daemon.running, 'the first daemon still runs')
    t.same(await snapshot(dir, skip), before, 'daemon.json and api.token untouched')
    const s = await runCli(['status', '--node', dir, '--json'])
    ok(t, s, 'status --node <dir> after the second daemon failed')
    const viaUrl = await runCli(['status', '--node', url, '--json'], { env: { RADCHAIN_API_TOKEN: token } })
    ok(t, viaUrl, 'the first daemon still answers')
  })

  t.test('SIGTERM stops the daemon cleanly; a restart keeps the chain', async (t) => {
    t.equal(await daemon.stop(), 0, 'exit code 0 after SIGTERM')
    t.notOk(await exists(join(dir, 'daemon.json')), 'daemon.json removed')
    const r = await runCli(['status', '--node', dir])
    assertOneLineError(t, r, /is not running; start it with `radchain daemon --dir /, 'status of a stopped daemon', 'API_UNREACHABLE')

    await daemon.start()
    const show = await runCli(['tx', 'show', noteHash, '--node', dir, '--json'])
    ok(t, show, 'tx show after restart')
    t.match(jsonOf(t, show), { status: 'final', height: noteHeight })
    t.equal(await daemon.stop(), 0, 'exit code 0 after the second SIGTERM')
  })
})

t.test('--help works for every command; usage errors start with "radchain: "', async (t) => {
  const commands = [[], ['init'], ['daemon'], ['status'], ['block'], ['tx'], ['tx', 'note'], ['tx', 'show'], ['keys'], ['keys', 'show'], ['demo']]
  const results = await Promise.all(commands.map((c) => runCli([...c, '--help'])))
  commands.forEach((c, i) => {
    const r = results[i] as CliResult
    const name = ['radchain', ...c].join(' ')
    ok(t, r, `${name} --help`)
    t.match(r.stdout, new RegExp(`^Usage: ${name} `), `${name} --help prints usage`)
  })
  const version = await runCli(['--version'])
  ok(t, version, '--version')
  t.match(version.stdout, /^\d+\.\d+\.\d+/)

  // Usage errors print the error line, then the command's help (showHelpAfterError).
  for (const args of [['block'], ['frobnicate'], ['daemon', '--log-level', 'loud']]) {
    const r = await runCli(args)
    t.equal(r.code, 1, `${args.join(' ')}: exit code 1`)
    t.match(r.stderr, /^radchain: \S/, `${args.join(' ')}: first stderr line starts with "radchain: "`)
    t.notMatch(linesOf(r.stderr)[0] ?? '', /\[[A-Z0-9_]+\]$/, `${args.join(' ')}: a usage error carries no code`)
    t.notMatch(r.stderr, /^\s+at\s/m, `${args.join(' ')}: no stack trace`)
  }
  const demo = await runCli(['demo', '--notes', '0'])
  assertOneLineError(t, demo, /--notes/, 'demo --notes 0', 'CLI_BAD_ARGUMENT')
})
