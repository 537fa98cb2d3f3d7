import t from 'tap'
import { runCli } from '../integration/helpers/cli.js'

// The README's main command: the whole story must run to its end on a fresh devnet.
t.test('radchain demo runs the whole story', async (t) => {
  const r = await runCli(['demo', '--notes', '200', '--base-port', '8500'], { timeoutMs: 240_000 })
  t.equal(r.code, 0, r.stderr)
  for (let step = 1; step <= 7; step++) t.match(r.stdout, new RegExp(`^${step}\\. `, 'm'), `step ${step} is told`)
  t.match(r.stdout, /every pixel digest equal to the original's/)
  t.match(r.stdout, /Demo complete/)
  t.notMatch(r.stdout + r.stderr, /Doe\^Archibald|77654033/, 'no patient identifier of the sample in the output')
})
