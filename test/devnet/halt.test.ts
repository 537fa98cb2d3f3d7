// A node whose consensus halts on a safety violation (a broken invariant or a
// failing store, injected here by the devnet fault haltAtHeight) must not keep
// serving as if all were well: it records why, exits with code 3, and stays
// down until an operator removes the record (README "Running a real network").
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { clientOf, daemonNodeArgs, devnetDaemonPath, pidOf, setOrgFaults, startOrg } from '../../src/devnet/index.js'
import { DATADIR_FILES, type HaltRecord } from '../../src/node/index.js'
import { exists } from '../../src/util/index.js'
import { assertOneLineError, runCli } from '../integration/helpers/cli.js'
import { newDevnet, org, waitFor } from './helpers.js'

const HALT_AT = 12

t.test('a halt on a safety violation: halted.json, exit code 3, status says why, no restart until the record is removed', async (t) => {
  const { m } = await newDevnet(t, 'halt', { orgs: 1, basePort: 6700, blockIntervalMs: 300, orgFaults: { org1: { haltAtHeight: HALT_AT } } })
  const o1 = org(m, 'org1')
  const haltFile = join(o1.dir, DATADIR_FILES.halted)
  await waitFor('org1 halted and gone', 60_000, async () => (await pidOf(o1)) === undefined && (await exists(haltFile)))
  const record = JSON.parse(await readFile(haltFile, 'utf8')) as HaltRecord
  t.match(record.reason, /injected safety violation at height 12/, 'the record says why')
  t.ok(record.height >= HALT_AT - 1 && record.height <= HALT_AT, `at height ${record.height}`)
  t.match(await readFile(join(o1.dir, 'daemon.log'), 'utf8'), /halted on a safety violation: stopping/, 'and so does the log')

  const st = await runCli(['status', '--node', o1.dir])
  assertOneLineError(t, st, /halted at height .*injected safety violation.*halted\.json/, 'status of a halted node', 'NODE_HALTED')
  t.equal(st.code, 3, 'exit code 3, as the daemon')

  await t.rejects(startOrg(o1, 20_000), { code: 'DEVNET_DAEMON_EXITED', message: /NODE_HALTED/ }, 'it does not start again on its own')

  // With the record removed (the fault still on), the daemon halts again at once: its own exit code is 3.
  await rm(haltFile)
  const child = spawn(process.execPath, [...daemonNodeArgs(), devnetDaemonPath(), '--dir', o1.dir], { stdio: 'ignore' })
  const [code] = (await once(child, 'exit')) as [number | null]
  t.equal(code, 3, 'the daemon process exits with code 3')
  t.ok(await exists(haltFile), 'and records it again')

  // The cause fixed and the record removed, the node goes on.
  await setOrgFaults(o1, {})
  await rm(haltFile)
  await startOrg(o1, 30_000)
  const c = await clientOf(o1)
  await waitFor('blocks past the old halt', 60_000, async () => (await c.status()).height > HALT_AT + 2)
  t.equal((await c.status()).halted, undefined, 'status shows no halt')
})
