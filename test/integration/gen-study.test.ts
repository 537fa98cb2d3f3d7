import t from 'tap'
import { readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { TAG, firstString, readDicom } from '../../src/study/index.js'
import { assertOneLineError, jsonOf, linesOf, runCli, tempDir } from './helpers/cli.js'

t.test('devnet gen-study: bad arguments give exit code 1 and one line', async (t) => {
  const dir = await tempDir(t, 'radchain-gen-')
  const out = join(dir, 'out')
  const cases: [string[], RegExp][] = [
    [['--slices', '0', '--out', out], /--slices/],
    [['--slices', 'many', '--out', out], /--slices/],
    [['--slices', '2', '--rows', '5000', '--out', out], /--rows/],
    [['--slices', '2', '--cols', '0', '--out', out], /--cols/],
    [['--out', out], /--slices/],
    [['--slices', '2'], /--out/],
  ]
  for (const [args, re] of cases) {
    const r = await runCli(['devnet', 'gen-study', ...args])
    t.equal(r.code, 1, `${args.join(' ')}: exit code 1`)
    assertOneLineError(t, r, re, args.join(' '))
  }
  t.same(await readdir(dir), [], 'nothing written')

  await writeFile(join(dir, 'taken'), 'x')
  const r = await runCli(['devnet', 'gen-study', '--slices', '1', '--out', dir, '--json'])
  t.equal(r.code, 1)
  assertOneLineError(t, r, /not empty/, 'non-empty --out')
  t.equal(jsonOf<{ error: { code: string } }>(t, r).error.code, 'SYNTHETIC_OUT_NOT_EMPTY')
})

t.test('devnet gen-study: writes the files; --json and text summaries', async (t) => {
  const dir = await tempDir(t, 'radchain-gen-')
  const out = join(dir, 'ct')
  const r = await runCli(['devnet', 'gen-study', '--slices', '3', '--rows', '32', '--cols', '48', '--out', out, '--json'])
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stderr, '', 'no progress bar without a terminal')
  const j = jsonOf<{ out: string; files: number; bytes: number; studyInstanceUid: string }>(t, r)
  t.equal(j.out, out)
  t.equal(j.files, 3)
  t.same((await readdir(out)).sort(), ['CT000001.dcm', 'CT000002.dcm', 'CT000003.dcm'])
  let bytes = 0
  for (const f of await readdir(out)) {
    bytes += (await stat(join(out, f))).size
    const inst = await readDicom(join(out, f))
    t.equal(firstString(inst.dataset, TAG.StudyInstanceUID), j.studyInstanceUid)
    t.equal(inst.dataset[TAG.Columns]?.Value?.[0], 48)
  }
  t.equal(j.bytes, bytes, "bytes are the files' sizes")
  t.ok(bytes > 3 * 32 * 48 * 2, 'the pixel data is there')

  const text = await runCli(['devnet', 'gen-study', '--slices', '2', '--rows', '16', '--cols', '16', '--out', join(dir, 'text')])
  t.equal(text.code, 0, text.stderr)
  t.equal(text.stderr, '')
  const lines = linesOf(text.stdout)
  t.equal(lines.length, 2)
  t.match(lines[0], /^2 file\(s\), \d+ bytes, in /)
  t.match(lines[1], /^study 2\.25\.\d+, synthetic patient Synthetic\^Patient\d{6}$/)
})
