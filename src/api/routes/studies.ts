import { z } from 'zod'
import { sleep } from '../../util/index.js'
import { ApiError } from '../errors.js'
import { parseBody, readJson } from '../request-body.js'
import { sendJson } from '../response.js'
import type { Route, RouteEnv } from '../router.js'

const StudiesBody = z.strictObject({
  paths: z.array(z.string().min(1).max(4096)).min(1).max(10_000),
  skipBad: z.boolean().default(false),
  patient: z.string().min(1).max(4096).optional(),
  // The id of the earlier version (the backend checks its form: STUDY_BAD_ID).
  extends: z.string().min(1).max(64).optional(),
})
const StudyGetBody = z.strictObject({ out: z.string().min(1).max(4096), scope: z.string().min(1).max(64).default('images') })
const StudyFetchBody = z.strictObject({})
const StudySendBody = z.strictObject({ to: z.string().min(1).max(16), scope: z.string().min(1).max(64).default('images') })

/** Longest `GET /v1/jobs/:id?wait=` (ms). */
export const MAX_JOB_WAIT_MS = 10_000
/** How often a waiting job request looks at its job. */
const JOB_WAIT_POLL_MS = 10

/**
 * Studies and their jobs: `GET|POST /v1/studies`, `GET /v1/studies/:id`,
 * `POST /v1/studies/:id/get`, `POST /v1/studies/:id/fetch`, `POST /v1/studies/:id/send`, `POST /v1/studies/:id/erase`,
 * `GET /v1/studies/:id/audit`, `GET /v1/jobs/:id[?wait=ms]`.
 */
export function studyRoutes(env: RouteEnv): Route[] {
  const { backend, maxBodyBytes } = env
  return [
    {
      path: '/v1/studies',
      handlers: {
        GET: async (c) => sendJson(c.res, 200, { studies: await backend.studies() }),
        POST: async (c) => {
          const body = parseBody(StudiesBody, await readJson(c.req, maxBodyBytes))
          const job = backend.addStudies(body.paths, {
            skipBad: body.skipBad,
            ...(body.patient === undefined ? {} : { patient: body.patient }),
            ...(body.extends === undefined ? {} : { extends: body.extends }),
          })
          sendJson(c.res, 202, { job })
        },
      },
    },
    { path: /^\/v1\/studies\/([^/]+)$/, handlers: { GET: async (c) => sendJson(c.res, 200, await backend.study(c.param)) } },
    {
      path: /^\/v1\/studies\/([^/]+)\/get$/,
      handlers: {
        POST: async (c) => {
          const body = parseBody(StudyGetBody, await readJson(c.req, maxBodyBytes))
          const job = await backend.getStudy(c.param, { out: body.out, scope: body.scope })
          sendJson(c.res, 202, { job })
        },
      },
    },
    {
      path: /^\/v1\/studies\/([^/]+)\/send$/,
      handlers: {
        POST: async (c) => {
          const body = parseBody(StudySendBody, await readJson(c.req, maxBodyBytes))
          const job = await backend.sendStudy(c.param, { to: body.to, scope: body.scope })
          sendJson(c.res, 202, { job })
        },
      },
    },
    {
      path: /^\/v1\/studies\/([^/]+)\/fetch$/,
      handlers: {
        POST: async (c) => {
          parseBody(StudyFetchBody, await readJson(c.req, maxBodyBytes))
          const job = await backend.getStudy(c.param, { out: null, scope: 'images' })
          sendJson(c.res, 202, { job })
        },
      },
    },
    {
      path: /^\/v1\/studies\/([^/]+)\/erase$/,
      handlers: { POST: async (c) => sendJson(c.res, 202, { hash: backend.eraseStudy(c.param), status: 'pending' }) },
    },
    { path: /^\/v1\/studies\/([^/]+)\/audit$/, handlers: { GET: async (c) => sendJson(c.res, 200, { events: await backend.audit(c.param) }) } },
    {
      path: /^\/v1\/jobs\/([0-9a-f]{16})$/,
      handlers: {
        GET: async (c) => {
          const wait = c.url.searchParams.get('wait')
          if (wait !== null && (!/^[0-9]{1,5}$/.test(wait) || Number(wait) > MAX_JOB_WAIT_MS))
            throw new ApiError('API_BAD_REQUEST', `wait must be an integer number of ms in [0, ${MAX_JOB_WAIT_MS}]`)
          // With ?wait, the answer comes when the job ends, or after that long with where it stands (a follower's poll
          // that hears of the end at once).
          const deadline = Date.now() + Number(wait ?? 0)
          let v = backend.studyJob(c.param)
          while (v !== undefined && v.state !== 'done' && v.state !== 'failed' && Date.now() < deadline && !c.signal.aborted) {
            await sleep(JOB_WAIT_POLL_MS)
            v = backend.studyJob(c.param)
          }
          if (v === undefined) throw new ApiError('API_NOT_FOUND', 'no such job')
          sendJson(c.res, 200, v)
        },
      },
    },
  ]
}
