import t from 'tap'
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SEND_DIR, clearSendDir } from '../../../src/node/dimse-send.js'

t.test('the decrypted files a send job left behind are removed at start, and nothing else', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-send-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await mkdir(join(dir, SEND_DIR, 'job1'), { recursive: true })
  await writeFile(join(dir, SEND_DIR, 'job1', 'IM0001.dcm'), 'decrypted')
  await writeFile(join(dir, 'config.json'), '{}')
  await clearSendDir(dir)
  t.same(await readdir(dir), ['config.json'], 'the send folder is gone, the rest stays')
  await clearSendDir(dir)
  t.pass('a data dir without the folder is fine')
})
