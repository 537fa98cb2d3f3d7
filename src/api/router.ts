import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from '../util/index.js'
import type { ApiBackend } from './backend.js'

/** One request as a handler sees it. */
export interface Ctx {
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly url: URL
  /** The path parameter of routes that have one (`:hash`, `:ref`). */
  readonly param: string
  /** Aborted when the client disconnects or the server stops. */
  readonly signal: AbortSignal
}

/** Answers one request; throws to answer with an error. */
export type Handler = (c: Ctx) => Promise<void>

/** Handlers of one path, by HTTP method. */
export type Handlers = Partial<Record<string, Handler>>

/**
 * One route: an exact path, or a regular expression whose first group is the
 * path parameter; and its handler for each method it allows.
 */
export interface Route {
  readonly path: string | RegExp
  readonly handlers: Handlers
}

/** What route handlers are built on. */
export interface RouteEnv {
  /** The node, as the API sees it. */
  readonly backend: ApiBackend
  /** Largest accepted request body in bytes. */
  readonly maxBodyBytes: number
  readonly logger: Logger
}

/** Finds the route of a path: exact paths first, then the patterns in the order given. */
export class Router {
  readonly #exact = new Map<string, Handlers>()
  readonly #patterns: { readonly re: RegExp; readonly handlers: Handlers }[] = []

  constructor(routes: readonly Route[]) {
    for (const r of routes) {
      if (typeof r.path === 'string') this.#exact.set(r.path, r.handlers)
      else this.#patterns.push({ re: r.path, handlers: r.handlers })
    }
  }

  /** The handlers of `path` and its parameter ('' for exact paths), or undefined when no route matches. */
  match(path: string): { handlers: Handlers; param: string } | undefined {
    const exact = this.#exact.get(path)
    if (exact !== undefined) return { handlers: exact, param: '' }
    for (const p of this.#patterns) {
      const m = p.re.exec(path)
      if (m !== null) return { handlers: p.handlers, param: m[1] ?? '' }
    }
    return undefined
  }
}
