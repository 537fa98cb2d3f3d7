import { createRequire } from 'node:module'
import type { pino as Pino } from 'pino'

// pino (some 25 files) is loaded when the first logger is made, not by every importer of util:
// most CLI commands never log, and each file loaded is start-up time.
const require = createRequire(import.meta.url)
let pinoModule: typeof Pino | undefined
function pino(): typeof Pino {
  pinoModule ??= (require('pino') as { pino: typeof Pino }).pino
  return pinoModule
}

/** Structured logger: `logger.info(msg, ctx)`. Never pass keys or patient identifiers. */
export interface Logger {
  debug(msg: string, ctx?: Record<string, unknown>): void
  info(msg: string, ctx?: Record<string, unknown>): void
  warn(msg: string, ctx?: Record<string, unknown>): void
  error(msg: string, ctx?: Record<string, unknown>): void
  child(bindings: Record<string, unknown>): Logger
}

/** Log levels accepted in config and on the command line. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const
/** One of LOG_LEVELS. */
export type LogLevel = (typeof LOG_LEVELS)[number]

// Field names that must never reach a log line, whatever the caller passes.
const REDACT = ['*.secret', '*.seed', '*.privateKey', '*.passphrase', '*.token', 'secret', 'seed', 'privateKey', 'passphrase', 'token']

function wrap(p: Pino.Logger): Logger {
  return {
    debug: (msg, ctx) => p.debug(ctx ?? {}, msg),
    info: (msg, ctx) => p.info(ctx ?? {}, msg),
    warn: (msg, ctx) => p.warn(ctx ?? {}, msg),
    error: (msg, ctx) => p.error(ctx ?? {}, msg),
    child: (b) => wrap(p.child(b)),
  }
}

/** A pino logger writing JSON lines to `dest` (a file descriptor, stdout by default). */
export function createLogger(opts: { level?: LogLevel; name?: string; dest?: number } = {}): Logger {
  const p = pino()(
    { level: opts.level ?? 'info', name: opts.name ?? 'radchain', redact: { paths: REDACT, censor: '[redacted]' }, base: { pid: process.pid } },
    pino().destination({ fd: opts.dest ?? 1, sync: false }),
  )
  return wrap(p)
}

/** A logger that drops everything (tests, library use). */
export function nullLogger(): Logger {
  const l: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, child: () => l }
  return l
}
