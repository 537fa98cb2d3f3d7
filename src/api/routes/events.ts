import { ApiError } from '../errors.js'
import { EventStream } from '../event-stream.js'
import type { Route, RouteEnv } from '../router.js'

/** Most event streams open at once; more are refused with 503 API_BUSY. */
export const MAX_EVENT_STREAMS = 64

/** What the event route needs beyond the common environment. */
export interface EventsEnv extends RouteEnv {
  /** The open event streams, which the server ends when it stops. */
  readonly streams: Set<EventStream>
  readonly sseKeepaliveMs: number
  readonly sseStallMs: number
}

/** Server-sent events: `GET /v1/events[?types=block,tx]`. */
export function eventRoutes(env: EventsEnv): Route[] {
  const { backend, logger, streams } = env
  return [
    {
      path: '/v1/events',
      handlers: {
        GET: async (c) => {
          if (streams.size >= MAX_EVENT_STREAMS) throw new ApiError('API_BUSY', 'too many event streams')
          // ?types=block,tx picks the kinds of events (default: all).
          const typesParam = c.url.searchParams.get('types')
          const types = typesParam === null ? null : new Set(typesParam.split(','))
          if (types !== null && [...types].some((x) => x !== 'block' && x !== 'tx'))
            throw new ApiError('API_BAD_REQUEST', 'types must be a comma-separated list of block and tx')
          const { res } = c
          res.statusCode = 200
          res.setHeader('content-type', 'text/event-stream; charset=utf-8')
          res.setHeader('cache-control', 'no-store')
          const stream = new EventStream(res, logger, env, () => streams.delete(stream))
          streams.add(stream)
          try {
            // Subscribe before the headers go out: a client that sees the response sees every later event.
            stream.attach(
              backend.subscribe((ev) => {
                if (types === null || types.has(ev.type)) stream.push(ev)
              }),
            )
          } catch (err) {
            // Nothing was sent yet: leave the response to the error path.
            void stream.close('none')
            throw err
          }
          if (!res.headersSent) res.flushHeaders()
        },
      },
    },
  ]
}
