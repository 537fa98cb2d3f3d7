import { ERROR_CODES } from '../src/util/index.js'

/** The line before the generated table in README.md. */
export const ERROR_TABLE_BEGIN =
  '<!-- error-codes:begin (generated from src/util/error-codes.ts by `npm run docs:errors`: edit the registry, not this table) -->'
/** The line after it. */
export const ERROR_TABLE_END = '<!-- error-codes:end -->'

/** The registry as a Markdown table, in registry order. */
export function errorTable(): string {
  const rows = Object.entries(ERROR_CODES).map(([code, { status, meaning }]) => `| \`${code}\` | ${status} | ${meaning.replaceAll('|', '\\|')} |`)
  return ['| code | HTTP status | meaning |', '|---|---|---|', ...rows].join('\n')
}

/** `readme` with the text between the two markers replaced by the table; throws if the markers are missing. */
export function withErrorTable(readme: string): string {
  const begin = readme.indexOf(ERROR_TABLE_BEGIN)
  const end = readme.indexOf(ERROR_TABLE_END)
  if (begin < 0 || end < begin) throw new Error(`README.md needs the lines ${ERROR_TABLE_BEGIN} and ${ERROR_TABLE_END}, in that order`)
  return `${readme.slice(0, begin + ERROR_TABLE_BEGIN.length)}\n${errorTable()}\n${readme.slice(end)}`
}
