import t from 'tap'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { repoRoot } from '../../src/devnet/index.js'

// The seeded fault run's options (npm run fault): a bad value ends it at once
// with one line and exit code 1, before any devnet starts.
const faultRun = join(repoRoot(), 'dist', 'src', 'devnet', 'fault-run.js')

t.test('bad options of the fault run: one line, exit code 1, nothing started', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--base-port', '80'], /--base-port must be an integer between 1024 and 65000, got "80"/],
    [['--base-port', 'many'], /--base-port must be an integer/],
    [['--seconds', '0'], /--seconds must be an integer between 1 and 86400/],
    [['--seed', '-1'], /--seed must be an integer between 0 and 4294967295/],
  ]
  for (const [args, match] of cases) {
    const r = spawnSync(process.execPath, [faultRun, ...args], { encoding: 'utf8', timeout: 20_000 })
    t.equal(r.status, 1, `${args.join(' ')}: exit code 1`)
    t.match(r.stderr, match, `${args.join(' ')}: says what is wrong`)
    t.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line`)
    t.equal(r.stdout, '', `${args.join(' ')}: no devnet started`)
  }
})
