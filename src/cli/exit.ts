import { RadError } from '../util/index.js'
import { fail } from './output.js'

/**
 * Runs the command's promise to its end so that every way it can go wrong
 * ends with one line on stderr and exit code 1: a rejection, an error thrown
 * from a stray callback, and a promise left waiting when nothing is left to
 * wake it (a connection the daemon dropped without an answer), which Node.js
 * would otherwise end silently with exit code 13.
 */
export function guardCommand(done: Promise<void>): void {
  let settled = false
  const json = process.argv.includes('--json')
  done.then(
    () => {
      settled = true
    },
    (err: unknown) => {
      settled = true
      fail(err, json)
    },
  )
  process.on('unhandledRejection', (err) => {
    fail(err, json)
    process.exit()
  })
  process.on('uncaughtException', (err) => {
    fail(err, json)
    process.exit()
  })
  process.on('beforeExit', () => {
    if (settled) return
    settled = true
    fail(new RadError('API_UNREACHABLE', 'the command was left waiting for an answer that cannot come (the connection to the daemon was dropped)'), json)
  })
}
