// The dependency direction of docs/ARCHITECTURE.md ("The rule, as a lint rule
// would check it"), as an ESLint rule. For a file under src/<A>/, an import
// that resolves under src/<B>/ (B other than A) must name a folder A may
// import, and must go through src/<B>/index.ts. A "types only" folder may be
// imported with `import type` (or only inline `type` specifiers).
import { dirname, relative, resolve, sep } from 'node:path'
import process from 'node:process'

/** Folder -> [may import (values and types), may import (types only)]. */
export const LAYERS = {
  util: [[], []],
  crypto: [['util'], []],
  chain: [['util', 'crypto'], []],
  consensus: [['util', 'crypto', 'chain'], []],
  storage: [['util', 'crypto', 'chain'], []],
  study: [['util', 'crypto'], ['chain']],
  p2p: [['util', 'crypto'], ['chain']],
  api: [['util'], []],
  node: [['util', 'crypto', 'chain', 'consensus', 'storage', 'study', 'p2p', 'api'], []],
  devnet: [['util', 'crypto', 'chain', 'study', 'api', 'node'], []],
  cli: [['util', 'crypto', 'chain', 'study', 'api', 'node', 'devnet'], []],
}

/** Modules imported by file on purpose: the polyfill, for its side effect, first in every entry point. */
export const BY_FILE = new Set(['util/polyfill.js'])

/** The src folder a path lies in, and the path inside it; undefined outside src/. */
function folderOf(srcRoot, file) {
  const rel = relative(srcRoot, file)
  if (rel.startsWith('..') || rel === '') return undefined
  const [folder, ...rest] = rel.split(sep)
  return rest.length === 0 ? undefined : { folder, inner: rest.join('/') }
}

/** Whether an import declaration (or export-from) carries types only. */
function typeOnly(node) {
  if (node.importKind === 'type' || node.exportKind === 'type') return true
  const specs = node.specifiers ?? []
  return specs.length > 0 && specs.every((s) => s.importKind === 'type' || s.exportKind === 'type')
}

/** @type {import('eslint').Rule.RuleModule} */
export const layersRule = {
  meta: {
    type: 'problem',
    docs: { description: 'imports across src/ folders follow the dependency direction of docs/ARCHITECTURE.md' },
    messages: {
      upward: "src/{{from}} may not import src/{{to}}{{types}} (dependency direction: docs/ARCHITECTURE.md, 'The rule')",
      notIndex: 'import src/{{to}} through its index.ts, not {{inner}} (docs/ARCHITECTURE.md)',
      unknown: 'src/{{to}} is not a folder of docs/ARCHITECTURE.md: add it to the table and to lint/layers.js',
    },
    schema: [],
  },
  create(context) {
    const file = context.physicalFilename ?? context.filename
    const srcRoot = resolve(context.cwd ?? process.cwd(), 'src')
    const from = folderOf(srcRoot, file)
    if (from === undefined || !(from.folder in LAYERS)) return {}
    const check = (node) => {
      const spec = node.source?.value
      if (typeof spec !== 'string' || !spec.startsWith('.')) return
      const to = folderOf(srcRoot, resolve(dirname(file), spec))
      if (to === undefined || to.folder === from.folder) return
      if (!(to.folder in LAYERS)) {
        context.report({ node: node.source, messageId: 'unknown', data: { to: to.folder } })
        return
      }
      const [values, types] = LAYERS[from.folder]
      const allowed = values.includes(to.folder) || (types.includes(to.folder) && typeOnly(node))
      if (!allowed) {
        const why = types.includes(to.folder) ? ' except with `import type`' : ''
        context.report({ node: node.source, messageId: 'upward', data: { from: from.folder, to: to.folder, types: why } })
        return
      }
      if (to.inner !== 'index.js' && to.inner !== 'index.ts' && !BY_FILE.has(`${to.folder}/${to.inner}`)) {
        context.report({ node: node.source, messageId: 'notIndex', data: { to: to.folder, inner: to.inner } })
      }
    }
    return {
      ImportDeclaration: check,
      ExportNamedDeclaration: check,
      ExportAllDeclaration: check,
      ImportExpression: check,
    }
  },
}

/** The plugin eslint.config.js loads. */
export const layersPlugin = { rules: { layers: layersRule } }
