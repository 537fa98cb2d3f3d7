import t from 'tap'
import { readdir, readFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ERROR_CODES, isErrorCode, statusOfCode } from '../../../src/util/index.js'
import { ERROR_TABLE_BEGIN, ERROR_TABLE_END, errorTable, withErrorTable } from '../../../scripts/error-table.js'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const CODE_LITERAL = /'([A-Z][A-Z0-9]*_[A-Z0-9_]+)'/g

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...(await sourceFiles(p)))
    else if (e.name.endsWith('.ts')) out.push(p)
  }
  return out
}

/** The text of the first argument of the call whose `(` is at `open`. */
function firstArgument(src: string, open: number): string {
  let depth = 0
  for (let i = open + 1; i < src.length; i++) {
    const c = src[i]
    if (c === '(' || c === '[' || c === '{') depth++
    else if (c === ')' || c === ']' || c === '}') {
      if (depth === 0) return src.slice(open + 1, i)
      depth--
    } else if (c === ',' && depth === 0) return src.slice(open + 1, i)
  }
  return src.slice(open + 1)
}

/**
 * Every code literal the sources hand to an error: the first argument of an
 * error class's constructor (a literal, or a literal fallback such as
 * `s.error?.code ?? 'TX_REJECTED'`), a `code: '...'` field, and a literal
 * checked against a code union with `satisfies`. Maps each code to the files
 * that use it.
 */
async function thrownCodes(): Promise<Map<string, Set<string>>> {
  const found = new Map<string, Set<string>>()
  const add = (code: string, file: string): void => {
    const set = found.get(code) ?? new Set()
    set.add(relative(ROOT, file))
    found.set(code, set)
  }
  for (const file of await sourceFiles(join(ROOT, 'src'))) {
    const src = await readFile(file, 'utf8')
    for (const m of src.matchAll(/\bnew\s+[A-Z]\w*Error\s*(?:<[^<>()]*>)?\(/g)) {
      for (const lit of firstArgument(src, m.index + m[0].length - 1).matchAll(CODE_LITERAL)) add(lit[1] as string, file)
    }
    for (const m of src.matchAll(/\bcode\s*:\s*'([A-Z][A-Z0-9]*_[A-Z0-9_]+)'/g)) add(m[1] as string, file)
    for (const m of src.matchAll(/'([A-Z][A-Z0-9]*_[A-Z0-9_]+)'\s+satisfies\s+\w+/g)) add(m[1] as string, file)
  }
  return found
}

t.test('every registered code has a status and a meaning', async (t) => {
  const codes = Object.keys(ERROR_CODES)
  t.ok(codes.length > 100, `${codes.length} codes`)
  const wrong: string[] = []
  for (const [code, info] of Object.entries(ERROR_CODES)) {
    if (!/^[A-Z][A-Z0-9]*_[A-Z0-9_]+$/.test(code)) wrong.push(`${code}: not upper snake case`)
    if (!(Number.isInteger(info.status) && info.status >= 100 && info.status <= 599)) wrong.push(`${code}: status ${info.status} not in 100..599`)
    if (info.meaning.trim().length === 0) wrong.push(`${code}: no meaning`)
    if (info.meaning.includes('\n')) wrong.push(`${code}: meaning of more than one line`)
    if (statusOfCode(code) !== info.status) wrong.push(`${code}: statusOfCode gives ${statusOfCode(code)}`)
  }
  t.same(wrong, [], 'each code: upper snake case, a status in 100..599, a one-line meaning, found by statusOfCode')
  t.equal(statusOfCode('NOT_A_CODE'), undefined, 'an unlisted code has no status')
  t.notOk(isErrorCode('toString'), 'inherited properties are not codes')
})

t.test('families read the same way', async (t) => {
  const family: [RegExp, number][] = [
    [/_TOO_LARGE$/, 413],
    [/_(UNKNOWN|NOT_FOUND)$/, 404],
    [/_EXISTS$/, 409],
    [/_ERASED$/, 410],
  ]
  const odd = Object.entries(ERROR_CODES).flatMap(([code, { status }]) =>
    family.filter(([re, want]) => re.test(code) && status !== want).map(([, want]) => `${code}: ${status}, not ${want}`),
  )
  t.same(odd, [], '_TOO_LARGE 413, _UNKNOWN and _NOT_FOUND 404, _EXISTS 409, _ERASED 410')
  // Statuses the API has always answered with and clients may rely on.
  const pinned: Record<string, number> = {
    API_UNAUTHORIZED: 401,
    API_BAD_REQUEST: 400,
    API_NOT_FOUND: 404,
    API_METHOD_NOT_ALLOWED: 405,
    API_BODY_TOO_LARGE: 413,
    API_BUSY: 503,
    API_INTERNAL: 500,
    TX_BAD_SIGNATURE: 400,
    TX_MALFORMED: 400,
    TX_MEMPOOL_FULL: 503,
    TX_SENDER_LIMIT: 503,
    STUDY_BAD_ID: 400,
    STUDY_UNKNOWN: 404,
    STUDY_ERASED: 410,
    STUDY_NO_ACCESS: 403,
    STUDY_BAD_SCOPE: 400,
    LEASE_UNKNOWN: 404,
    LEASE_NOT_CUSTODIAN: 403,
    LEASE_BAD_SCOPE: 400,
    SWARM_NOT_ALLOWED: 403,
    STUDY_NOT_HELD: 404,
  }
  t.same(Object.fromEntries(Object.keys(pinned).map((c) => [c, statusOfCode(c)])), pinned, 'statuses clients may rely on')
})

t.test('every code the sources throw is registered, and every registered code is thrown', async (t) => {
  const thrown = await thrownCodes()
  // The scan must see codes in every layer, including files this registry does not own.
  for (const [code, file] of [
    ['STUDY_NOT_HELD', 'src/node/studies.ts'],
    ['TX_REJECTED', 'src/node/studies.ts'],
    ['SWARM_NOT_ALLOWED', 'src/node/swarm-serve.ts'],
    ['STUDY_OUT_NOT_EMPTY', 'src/study/export.ts'],
    ['SYNTHETIC_BAD_OPTIONS', 'src/study/synthetic.ts'],
    ['P2P_TIMEOUT', 'src/p2p/reqresp.ts'],
    ['CHUNK_QUOTA_EXCEEDED', 'src/storage/chunk-store.ts'],
    ['API_INTERNAL', 'src/api/error-response.ts'],
    ['CLI_BAD_ARGUMENT', 'src/cli/commands/lease.ts'],
    ['JOB_FAILED', 'src/devnet/devnet.ts'],
  ] as const) {
    t.ok(thrown.get(code)?.has(file), `the scan finds ${code} in ${file}`)
  }
  const unregistered = [...thrown].filter(([code]) => !isErrorCode(code)).map(([code, files]) => `${code} (${[...files].join(', ')})`)
  t.same(unregistered, [], `every code of the ${thrown.size} the sources throw is in the registry`)
  const unused = Object.keys(ERROR_CODES).filter((code) => !thrown.has(code))
  t.same(unused, [], 'every registered code is thrown somewhere')
})

t.test("the README's table of error codes is the registry (npm run docs:errors)", async (t) => {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8')
  t.equal(readme.split(ERROR_TABLE_BEGIN).length, 2, 'one begin marker')
  t.equal(readme.split(ERROR_TABLE_END).length, 2, 'one end marker')
  const inside = readme.slice(readme.indexOf(ERROR_TABLE_BEGIN) + ERROR_TABLE_BEGIN.length, readme.indexOf(ERROR_TABLE_END))
  t.equal(inside, `\n${errorTable()}\n`, 'the table between the markers is the one the registry gives; run `npm run docs:errors`')
  t.equal(withErrorTable(readme), readme, 'regenerating changes nothing')
  const missing = Object.entries(ERROR_CODES)
    .filter(([code, { status }]) => !inside.includes(`| \`${code}\` | ${status} |`))
    .map(([code]) => code)
  t.same(missing, [], 'every code is in the table with its status')
  t.throws(() => withErrorTable('# no markers'), /needs the lines/, 'a README without the markers is refused')
})
