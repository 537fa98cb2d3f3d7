import t from 'tap'
import { parseByteSize, parseCount } from '../../../src/cli/commands/org.js'

t.test('org params: sizes as plain bytes or with a binary unit', async (t) => {
  t.equal(parseByteSize('40GiB', '--max-study-bytes'), 40 * 1024 ** 3)
  t.equal(parseByteSize('40 gib', '--max-study-bytes'), 40 * 1024 ** 3, 'unit in any case, space allowed')
  t.equal(parseByteSize('512MiB', '--max-study-bytes'), 512 * 1024 ** 2)
  t.equal(parseByteSize('2TiB', '--max-study-bytes'), 2 * 1024 ** 4)
  t.equal(parseByteSize('4096', '--max-study-bytes'), 4096)
  t.equal(parseByteSize('4096B', '--max-study-bytes'), 4096)
  for (const bad of ['', '40GB', '1.5GiB', '-1', 'GiB', '99999999999TiB', '40 GiB extra'])
    t.throws(() => parseByteSize(bad, '--max-study-bytes'), { name: 'CliError', code: 'CLI_BAD_ARGUMENT', message: /--max-study-bytes/ }, `refused: "${bad}"`)
})

t.test('org params: counts are whole numbers', async (t) => {
  t.equal(parseCount('40960', '--max-study-chunks'), 40960)
  for (const bad of ['', '1e5', '4.5', '-3', '0x10', '99999999999999999999'])
    t.throws(() => parseCount(bad, '--max-study-chunks'), { name: 'CliError', code: 'CLI_BAD_ARGUMENT' }, `refused: "${bad}"`)
})
