import t from 'tap'
import { ESLint } from 'eslint'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'

// The lint rule that encodes the dependency direction of docs/ARCHITECTURE.md
// ("The rule, as a lint rule would check it"), run through the project's own
// eslint.config.js on sources placed (virtually) in src/ folders.
const root = fileURLToPath(new URL('../../../', import.meta.url))
const eslint = new ESLint({ cwd: root })

async function layerErrors(file: string, code: string): Promise<string[]> {
  const [res] = await eslint.lintText(code, { filePath: join(root, file) })
  return (res?.messages ?? []).filter((m) => m.ruleId === 'radchain/layers').map((m) => m.message)
}

t.test('an upward import fails the lint', async (t) => {
  const errs = await layerErrors('src/p2p/fixture.ts', "import { RadNode } from '../node/index.js'\nexport const x: unknown = RadNode\n")
  t.equal(errs.length, 1, 'p2p importing node is refused')
  t.match(errs[0], /src\/p2p may not import src\/node/)
  t.equal((await layerErrors('src/util/fixture.ts', "export { sha256 } from '../crypto/index.js'\n")).length, 1, 'util re-exporting crypto is refused')
  t.equal(
    (await layerErrors('src/chain/fixture.ts', "export async function f(): Promise<unknown> { return import('../consensus/index.js') }\n")).length,
    1,
    'a dynamic import counts too',
  )
  t.equal(
    (await layerErrors('src/api/fixture.ts', "import { loadConfig } from '../node/index.js'\nexport const f: unknown = loadConfig\n")).length,
    1,
    'api importing node is refused',
  )
})

t.test('types-only folders: import type passes, a value import fails', async (t) => {
  t.same(await layerErrors('src/study/fixture.ts', "import type { RegisterStudyPayload } from '../chain/index.js'\nexport type P = RegisterStudyPayload\n"), [])
  const inline = await layerErrors('src/p2p/fixture.ts', "import { type Genesis } from '../chain/index.js'\nexport type G = Genesis\n")
  t.equal(inline.length, 1, 'inline type specifiers alone are a value import: the module still loads at run time')
  t.same(await layerErrors('src/study/fixture.ts', "export type S = import('../chain/index.js').Genesis\n"), [], 'a type-position import() is types only')
  t.equal(
    (await layerErrors('src/p2p/fixture.ts', "export type N = import('../node/index.js').RadNode\n")).length,
    1,
    'a type-position import() of a forbidden folder fails',
  )
  const errs = await layerErrors('src/study/fixture.ts', "import { encodeTx } from '../chain/index.js'\nexport const f: unknown = encodeTx\n")
  t.equal(errs.length, 1)
  t.match(errs[0], /except with `import type`/)
})

t.test('another folder only through its index.ts', async (t) => {
  const errs = await layerErrors('src/node/fixture.ts', "import { PipeClient } from '../p2p/pipe.js'\nexport const p: unknown = PipeClient\n")
  t.equal(errs.length, 1)
  t.match(errs[0], /through its index\.ts, not pipe\.js/)
  t.same(
    await layerErrors(
      'src/node/sub/fixture.ts',
      "import { PipeClient } from '../../p2p/index.js'\nimport { x } from '../studies.js'\nexport const p: unknown = [PipeClient, x]\n",
    ),
    [],
    'from a subfolder, and within the folder by file',
  )
  t.same(await layerErrors('bin/fixture.ts', "import '../src/util/polyfill.js'\n"), [], 'outside src/ the rule does not apply')
  t.same(await layerErrors('src/devnet/fixture.ts', "import '../util/polyfill.js'\n"), [], 'the polyfill is imported by file, for its side effect')
})

t.test('imports the rule could not check fail, and so do modules outside the folders', async (t) => {
  const dyn = await layerErrors('src/cli/fixture.ts', 'export async function f(x: string): Promise<unknown> { return import(`../${x}/index.js`) }\n')
  t.equal(dyn.length, 1)
  t.match(dyn[0], /string literal/)
  t.equal((await layerErrors('src/fixture.ts', 'export const x = 1\n')).length, 1, 'a module directly under src/')
  const unknown = await layerErrors('src/newfolder/fixture.ts', 'export const x = 1\n')
  t.equal(unknown.length, 1)
  t.match(unknown[0], /not a folder of docs\/ARCHITECTURE\.md/)
})

t.test('allowed imports pass', async (t) => {
  t.same(
    await layerErrors(
      'src/cli/commands/fixture.ts',
      "export async function f(): Promise<unknown> { return [await import('../../devnet/index.js'), await import('../../node/index.js')] }\n",
    ),
    [],
  )
  t.same(
    await layerErrors(
      'src/node/fixture.ts',
      "import { ApiServer } from '../api/index.js'\nimport { P2PNode } from '../p2p/index.js'\nexport const s: unknown = [ApiServer, P2PNode]\n",
    ),
    [],
  )
})
