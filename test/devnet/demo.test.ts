import t from 'tap'
import { runCli } from '../integration/helpers/cli.js'

// The README's main command: the whole story must run to its end on a fresh devnet.
t.test('radchain demo runs the whole story', async (t) => {
  const r = await runCli(['devnet', 'demo', '--notes', '200', '--base-port', '8500'], { timeoutMs: 240_000 })
  t.equal(r.code, 0, r.stderr)
  for (let step = 1; step <= 12; step++) t.match(r.stdout, new RegExp(`^${step}\\. `, 'm'), `step ${step} is told`)
  t.match(r.stdout, /nothing is granted \(a fetch now: refused, no lease\)/, 'no lease before consent')
  t.match(r.stdout, /every pixel digest equals the original's; no demographics in them/, 'fetched with the custodian offline, verified')
  t.match(r.stdout, /lease granted\s+by org1/, 'the audit shows the grant')
  t.match(r.stdout, /study retrieved under the lease/, 'and the retrieval')
  t.match(r.stdout, /refused: the holders refused the request: the lease has ended/, 'a fetch after expiry is refused')
  t.match(r.stdout, /VIOLATION: request under an ended lease/, 'and recorded as a violation')
  t.match(r.stdout, /Demo complete/)
  t.notMatch(r.stdout + r.stderr, /Doe\^Archibald|77654033/, 'no patient identifier of the sample in the output')
})
