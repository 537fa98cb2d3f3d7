import type { Logger } from '../../../src/util/index.js'

/** One captured log call. */
export interface LogLine {
  level: string
  msg: string
  ctx?: Record<string, unknown>
}

/** A Logger that appends every call to `lines`, so tests can assert on what was logged. */
export function captureLogger(lines: LogLine[]): Logger {
  const log =
    (level: string) =>
    (msg: string, ctx?: Record<string, unknown>): void => {
      lines.push({ level, msg, ctx })
    }
  const l: Logger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error'), child: () => l }
  return l
}
