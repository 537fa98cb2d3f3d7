// The dependency direction of docs/ARCHITECTURE.md ("The rule, as a lint rule
// would check it"), as an ESLint rule. For a file under src/<A>/, an import
// that resolves under src/<B>/ (B other than A) must name a folder A may
// import, and must go through src/<B>/index.ts. A "types only" folder may be
// imported with `import type` (or only inline `type` specifiers).
import { dirname, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

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
  dicomweb: [['util', 'study'], []],
  dimse: [['util', 'study'], []],
  node: [['util', 'crypto', 'chain', 'consensus', 'storage', 'study', 'p2p', 'api', 'dicomweb', 'dimse'], []],
  devnet: [['util', 'crypto', 'chain', 'study', 'api', 'node'], []],
  cli: [['util', 'crypto', 'chain', 'study', 'api', 'node', 'devnet'], []],
}

/** Modules imported by file on purpose: the polyfill, for its side effect, first in every entry point. */
export const BY_FILE = new Set(['util/polyfill.js', 'api/client.js'])

/** The src folder a path lies in, and the path inside it; undefined outside src/. */
function folderOf(srcRoot, file) {
  const rel = relative(srcRoot, file)
  if (rel.startsWith('..') || rel === '') return undefined
  const [folder, ...rest] = rel.split(sep)
  return rest.length === 0 ? undefined : { folder, inner: rest.join('/') }
}

/** The repository's src/, wherever ESLint runs from. */
const SRC_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'src')

/**
 * Whether an import carries types only: `import type`, `export type ... from`,
 * or a type-position `import('...')`. Inline specifiers (`import { type X }`)
 * are not: with verbatimModuleSyntax the module is still loaded at run time
 * (and @typescript-eslint/no-import-type-side-effects asks for `import type`).
 */
function typeOnly(node) {
  return node.type === 'TSImportType' || node.importKind === 'type' || node.exportKind === 'type'
}

/** The module specifier of an import-like node: a string, null when it is not a literal, undefined when there is none. */
function specifierOf(node) {
  if (node.type === 'TSImportType') {
    const arg = node.argument
    const lit = arg?.type === 'TSLiteralType' ? arg.literal : arg
    return typeof lit?.value === 'string' ? lit.value : null
  }
  if (node.source === null || node.source === undefined) return undefined
  if (node.source.type === 'Literal' && typeof node.source.value === 'string') return node.source.value
  if (node.source.type === 'TemplateLiteral' && node.source.expressions.length === 0) return node.source.quasis[0]?.value.cooked ?? null
  return null
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
      outside: 'a module of src/ lives in one of its folders (docs/ARCHITECTURE.md): {{file}}',
      dynamic: 'an import in src/ names its module with a string literal, so the layering can be checked',
    },
    schema: [],
  },
  create(context) {
    const file = context.physicalFilename ?? context.filename
    const srcRoot = SRC_ROOT
    const rel = relative(srcRoot, file)
    if (rel.startsWith('..') || rel === '') return {}
    const from = folderOf(srcRoot, file)
    if (from === undefined || !(from.folder in LAYERS)) {
      return {
        Program(node) {
          if (from === undefined) context.report({ node, messageId: 'outside', data: { file: rel } })
          else context.report({ node, messageId: 'unknown', data: { to: from.folder } })
        },
      }
    }
    const check = (node) => {
      const spec = specifierOf(node)
      if (spec === undefined) return
      if (spec === null) {
        context.report({ node, messageId: 'dynamic' })
        return
      }
      if (!spec.startsWith('.')) return
      const to = folderOf(srcRoot, resolve(dirname(file), spec))
      if (to === undefined || to.folder === from.folder) return
      if (!(to.folder in LAYERS)) {
        context.report({ node, messageId: 'unknown', data: { to: to.folder } })
        return
      }
      const [values, types] = LAYERS[from.folder]
      const allowed = values.includes(to.folder) || (types.includes(to.folder) && typeOnly(node))
      if (!allowed) {
        const why = types.includes(to.folder) ? ' except with `import type`' : ''
        context.report({ node, messageId: 'upward', data: { from: from.folder, to: to.folder, types: why } })
        return
      }
      if (to.inner !== 'index.js' && to.inner !== 'index.ts' && !BY_FILE.has(`${to.folder}/${to.inner}`)) {
        context.report({ node, messageId: 'notIndex', data: { to: to.folder, inner: to.inner } })
      }
    }
    return {
      ImportDeclaration: check,
      ExportNamedDeclaration: check,
      ExportAllDeclaration: check,
      ImportExpression: check,
      TSImportType: check,
    }
  },
}

/** The plugin eslint.config.js loads. */
export const layersPlugin = { rules: { layers: layersRule } }
