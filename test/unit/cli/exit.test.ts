import t from 'tap'
import { spawnSync } from 'node:child_process'
import { fileURLToPath, pathToFileURL } from 'node:url'

// The CLI's last line of defence (src/cli/exit.ts), run in a child process as
// the built CLI runs it (npm test builds first): however a command ends badly,
// one line on stderr and exit code 1.
const exitJs = pathToFileURL(fileURLToPath(new URL('../../../dist/src/cli/exit.js', import.meta.url))).href
const utilJs = pathToFileURL(fileURLToPath(new URL('../../../dist/src/util/index.js', import.meta.url))).href

function run(body: string, args: string[] = []): { code: number | null; stdout: string; stderr: string } {
  const script = `import { guardCommand } from ${JSON.stringify(exitJs)}\nimport { RadError } from ${JSON.stringify(utilJs)}\n${body}\n`
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, '--', ...args], { encoding: 'utf8', timeout: 20_000 })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

t.test('a command that finishes: exit code 0, nothing on stderr', async (t) => {
  const r = run('guardCommand(Promise.resolve())')
  t.equal(r.code, 0)
  t.equal(r.stderr, '')
})

t.test('a command left waiting with nothing to wake it: one line and exit code 1, not a silent 13', async (t) => {
  const r = run('guardCommand(new Promise(() => {}))')
  t.equal(r.code, 1)
  t.match(r.stderr, /^radchain: the command was left waiting for an answer that cannot come .* \[API_UNREACHABLE\]\n$/)
  const json = run('guardCommand(new Promise(() => {}))', ['--json'])
  t.equal(json.code, 1)
  t.same(JSON.parse(json.stdout), {
    error: { code: 'API_UNREACHABLE', message: 'the command was left waiting for an answer that cannot come (the connection to the daemon was dropped)' },
  })
})

t.test('a rejection, and an error from a stray callback: one line each, exit code 1', async (t) => {
  const rejected = run("guardCommand(Promise.reject(new RadError('API_TIMEOUT', 'no answer in time')))")
  t.equal(rejected.code, 1)
  t.equal(rejected.stderr, 'radchain: no answer in time [API_TIMEOUT]\n')
  const stray = run("guardCommand(new Promise((resolve) => setTimeout(resolve, 5000)))\nsetTimeout(() => Promise.reject(new Error('stray failure')), 10)")
  t.equal(stray.code, 1)
  t.equal(stray.stderr, 'radchain: stray failure [ERROR]\n')
  const thrown = run("guardCommand(new Promise((resolve) => setTimeout(resolve, 5000)))\nsetTimeout(() => { throw new Error('thrown in a callback') }, 10)")
  t.equal(thrown.code, 1)
  t.equal(thrown.stderr, 'radchain: thrown in a callback [ERROR]\n')
})
