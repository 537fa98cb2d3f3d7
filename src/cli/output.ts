import { errorMessage, isRadError } from '../util/index.js'

/** Prints `value` as JSON (for --json) or `text` for people. */
export function print(json: boolean, value: unknown, text: string | (() => string)): void {
  if (json) process.stdout.write(JSON.stringify(value, null, 2) + '\n')
  else process.stdout.write((typeof text === 'string' ? text : text()) + '\n')
}

/**
 * Prints a failure as one line on stderr, `radchain: <message> [CODE]` (and
 * `{"error":{"code","message"}}` on stdout with --json); sets the exit code.
 * The code is the error's (the daemon's, for an error the API relays), or
 * `ERROR` for a failure that is not one of radchain's own.
 */
export function fail(err: unknown, json: boolean): void {
  const code = isRadError(err) ? err.code : 'ERROR'
  const message = errorMessage(err)
  if (json) process.stdout.write(JSON.stringify({ error: { code, message } }) + '\n')
  process.stderr.write(`radchain: ${message} [${code}]\n`)
  process.exitCode = code === 'NODE_HALTED' ? EXIT_HALTED : 1
}

/** Exit code of a daemon that halted on a safety violation (and of commands that find it so): not to be restarted blindly. */
export const EXIT_HALTED = 3

/** Bytes as megabytes with one decimal. */
export function mb(n: number): string {
  return (n / 1e6).toFixed(1)
}

/** `label: value` lines, aligned. */
export function table(rows: [string, unknown][]): string {
  const w = Math.max(...rows.map(([k]) => k.length))
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${String(v)}`).join('\n')
}
