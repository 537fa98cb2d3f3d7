// Writes the table of error codes into README.md, between its two markers,
// from the registry (src/util/error-codes.ts). Run with `npm run docs:errors`.
import { readFile, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { withErrorTable } from './error-table.js'

const readme = fileURLToPath(new URL('../README.md', import.meta.url))
const before = await readFile(readme, 'utf8')
const after = withErrorTable(before)
if (after !== before) await writeFile(readme, after)
process.stdout.write(after === before ? 'README.md: the table of error codes is up to date\n' : 'README.md: the table of error codes was rewritten\n')
