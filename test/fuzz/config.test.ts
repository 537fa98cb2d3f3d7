// Fuzzing the node's JSON file readers (src/node/config.ts readJsonFile,
// checkJson, parseConfig; src/node/faults.ts parseFaults, loadFaults).
import t from 'tap'
import fc from 'fast-check'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, FAULTS_FILE, loadConfig, loadFaults, parseConfig, parseFaults, readJsonFile } from '../../src/node/index.js'
import { utf8 } from '../../src/util/index.js'
import { jsonReshaped, mutated, noteSeed, params, typedOrValue, typedOrValueAsync } from './fuzz.js'

noteSeed(t)
const CONFIG = [ConfigError]

const fullConfig: unknown = JSON.parse(JSON.stringify(parseConfig({})))
const faults = { equivocate: true, serveDelayMs: 10, serveGarbage: false, noPull: true }

t.test('parseConfig and parseFaults of changed documents and any JSON: a checked value, or CONFIG_INVALID', async (t) => {
  fc.assert(
    fc.property(fc.oneof(jsonReshaped(fullConfig), jsonReshaped(faults), fc.jsonValue({ maxDepth: 3 }), fc.anything()), (json) => {
      const c = typedOrValue(() => parseConfig(json), CONFIG)
      // What parses is a config that parses again to itself (defaults filled in once).
      if (c !== undefined && JSON.stringify(parseConfig(JSON.parse(JSON.stringify(c)))) !== JSON.stringify(c)) return false
      const f = typedOrValue(() => parseFaults(json), CONFIG)
      return f === undefined || JSON.stringify(parseFaults(JSON.parse(JSON.stringify(f)))) === JSON.stringify(f)
    }),
    params(1000),
  )
  t.pass('no other error escaped')
})

t.test('config.json and faults.json files of any bytes: JSON or a checked value, or a ConfigError', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-fuzz-config-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const files = [utf8(JSON.stringify(fullConfig, null, 2)), utf8(JSON.stringify(faults))]
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.constantFrom(...files).chain((b) => mutated(b, 4)),
        fc.uint8Array({ maxLength: 100 }),
      ),
      async (b) => {
        await writeFile(join(dir, 'config.json'), b)
        await writeFile(join(dir, FAULTS_FILE), b)
        await typedOrValueAsync(() => readJsonFile(join(dir, 'config.json')), CONFIG)
        await typedOrValueAsync(() => loadConfig(dir), CONFIG)
        await typedOrValueAsync(() => loadFaults(dir), CONFIG)
      },
    ),
    params(150, 5),
  )
  t.pass('no other error escaped')
})
