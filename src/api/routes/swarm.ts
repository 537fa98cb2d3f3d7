import { sendJson } from '../response.js'
import type { Route, RouteEnv } from '../router.js'

/** The swarm: `GET /v1/swarm`. */
export function swarmRoutes(env: RouteEnv): Route[] {
  const { backend } = env
  return [{ path: '/v1/swarm', handlers: { GET: async (c) => sendJson(c.res, 200, backend.swarmStatus()) } }]
}
