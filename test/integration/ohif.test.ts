// A real web viewer against radchain's DICOMweb listener: OHIF 3.13, served
// from another origin with README's app-config.js excerpt, finds a study with
// QIDO-RS and retrieves its metadata and frames with WADO-RS, carrying a
// bearer token, in headless Chromium, and draws it; the canvas is read back
// (README "Connecting a PACS and a viewer", "OHIF's data source
// configuration for radchain"). Everything stays on 127.0.0.1: the browser
// resolves no other host.
import t from 'tap'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { launch, type HTTPResponse } from 'puppeteer-core'
import { DATADIR_FILES, initDataDir } from '../../src/node/index.js'
import type { DaemonInfo } from '../../src/api/index.js'
import { DaemonProcess } from '../../src/devnet/index.js'
import { generateCtStudy } from '../../src/study/index.js'
import { sleep } from '../../src/util/index.js'
import { CHROMIUM, ensureViewer, readmeAppConfig, serveViewer } from '../helpers/ohif.js'
import { runCli } from './helpers/cli.js'

// Margins for a machine twice as slow as the 2-core one this was measured on (OHIF's 17 MB bundle loaded in 5-15 s,
// the first image 15-20 s later, WebGL in software), and together within .taprc's 300 s for the file.
const PAGE_LOAD_MS = 90_000
const FIRST_IMAGE_MS = 150_000

// Fails (never skips) when OHIF's build or Chromium is missing, saying how to install it.
ensureViewer()

const dir = await mkdtemp(join(tmpdir(), 'radchain-ohif-'))
const daemon = new DaemonProcess(dir)
const viewer = await serveViewer()
t.teardown(async () => {
  await viewer.close()
  await daemon.kill()
  if (t.passing()) await rm(dir, { recursive: true, force: true })
  else {
    // The daemon's log names no patient and no UID; the screenshot is of a synthetic study.
    console.error((await readFile(join(dir, 'daemon.log'), 'utf8').catch(() => '')).split('\n').slice(-40).join('\n'))
    console.error(`kept ${dir} (daemon.log, ohif.png)`)
  }
})
await initDataDir({
  dir,
  dev: true,
  apiPort: 0,
  scrypt: { N: 1024, r: 8, p: 1 },
  params: { blockIntervalMs: 300, chunkSize: 64 * 1024 },
  config: { dicomweb: { stableSeconds: 1, corsOrigins: [viewer.origin] } },
})
const client = await daemon.start()
const base = (JSON.parse(await readFile(join(dir, DATADIR_FILES.daemon), 'utf8')) as DaemonInfo).dicomweb as string
const token = async (name: string, scope: string): Promise<string> =>
  (JSON.parse((await runCli(['dicomweb', 'token', 'create', '--name', name, '--scope', scope, '--node', dir, '--json'])).stdout) as { token: string }).token
const pacs = await token('pacs', 'write')
const ohif = await token('ohif', 'read')

// A small CT (4 slices of 128 x 128, fixed seed) sent as a PACS would, then registered: OHIF reads it decrypted
// from its chunks, the state a study is in for all but its first seconds.
const study = await generateCtStudy({ slices: 4, rows: 128, cols: 128, out: join(dir, 'ct'), seed: 7 })
{
  const boundary = 'radchain-ohif-test'
  const parts: Buffer[] = []
  for (const f of study.files) parts.push(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), await readFile(f), Buffer.from('\r\n'))
  parts.push(Buffer.from(`--${boundary}--\r\n`))
  const res = await fetch(`${base}/studies`, {
    method: 'POST',
    body: Buffer.concat(parts),
    headers: { authorization: `Bearer ${pacs}`, 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}` },
  })
  if (res.status !== 200) throw new Error(`STOW-RS answered ${res.status}`)
  const spool = join(dir, DATADIR_FILES.dicomwebSpool)
  const deadline = Date.now() + 60_000
  const spooled = async (): Promise<number> => (await readdir(spool, { recursive: true })).filter((f) => String(f).endsWith('.dcm')).length
  while (((await client.studies()).length === 0 || (await spooled()) > 0) && Date.now() < deadline) await sleep(200)
  if ((await client.studies()).length !== 1 || (await spooled()) > 0) throw new Error('the study was not registered within 60 s')
}

viewer.setAppConfig(await readmeAppConfig(base))

interface RequestSeen {
  readonly method: string
  readonly url: string
  readonly status: number
  readonly authorization: string | undefined
  readonly headers: Record<string, string>
}

/** What the viewport's canvas holds: its size, how many gray levels, how much of it is lit, and the luminance at its center and in a corner. */
interface CanvasStats {
  readonly width: number
  readonly height: number
  readonly levels: number
  readonly lit: number
  readonly center: number
  readonly corner: number
}

// Runs in the page, as source text: a function of this file would reach the browser as tsx compiled it, with helper
// calls the page lacks. OHIF's cornerstone3D renders with WebGL off screen and copies each frame into the viewport's
// 2D canvas, which is read back here.
const CANVAS_STATS = `(() => {
  const c = document.querySelector('[data-cy="viewport-pane"] canvas.cornerstone-canvas')
  if (!(c instanceof HTMLCanvasElement) || c.width === 0 || c.height === 0) return null
  const ctx = c.getContext('2d')
  if (ctx === null) return null
  const d = ctx.getImageData(0, 0, c.width, c.height).data
  const lum = (i) => Math.round(0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2])
  const seen = new Set()
  let lit = 0
  for (let i = 0; i < d.length; i += 4) {
    const l = lum(i)
    seen.add(l)
    if (l > 8) lit++
  }
  const at = (x, y) => lum((y * c.width + x) * 4)
  return {
    width: c.width,
    height: c.height,
    levels: seen.size,
    lit: lit / (c.width * c.height),
    center: at(Math.floor(c.width / 2), Math.floor(c.height / 2)),
    corner: at(2, 2),
  }
})()`

t.test('OHIF, from another origin and with the token in its URL, finds the study, retrieves it and draws it', async (t) => {
  const browser = await launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 90_000,
    args: [
      // Root, in a container: Chromium's sandbox needs user namespaces it may not have.
      '--no-sandbox',
      // cornerstone3D needs WebGL: SwiftShader, in software (no GPU here).
      '--use-angle=swiftshader',
      '--enable-unsafe-swiftshader',
      // Nothing leaves 127.0.0.1: every other host name fails to resolve, and no proxy is used.
      '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
      '--no-proxy-server',
    ],
  })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  await page.setViewport({ width: 1280, height: 800 })
  const pageErrors: string[] = []
  const consoleErrors: string[] = []
  const failed: string[] = []
  const elsewhere: string[] = []
  const seen: RequestSeen[] = []
  page.on('pageerror', (e) => pageErrors.push(String(e).slice(0, 300)))
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text().slice(0, 300))
  })
  page.on('request', (r) => {
    const u = r.url()
    if (!u.startsWith('http://127.0.0.1:') && !u.startsWith('data:') && !u.startsWith('blob:')) elsewhere.push(u.slice(0, 200))
  })
  page.on('requestfailed', (r) => failed.push(`${r.url().slice(0, 200)}: ${r.failure()?.errorText ?? '?'}`))
  page.on('response', (r: HTTPResponse) => {
    if (!r.url().startsWith(base)) return
    const q = r.request()
    seen.push({ method: q.method(), url: r.url().slice(base.length), status: r.status(), authorization: q.headers().authorization, headers: r.headers() })
  })

  const started = Date.now()
  await page.goto(`${viewer.origin}/viewer?StudyInstanceUIDs=${study.studyInstanceUid}&token=${ohif}`, { waitUntil: 'load', timeout: PAGE_LOAD_MS })
  const loaded = Date.now()
  // Drawn: the phantom's body, air and denser regions, in many gray levels over a good part of the canvas.
  const drawn = await page
    .waitForFunction(`((s) => s !== null && s.levels >= 16 && s.lit > 0.1)(${CANVAS_STATS})`, { timeout: FIRST_IMAGE_MS, polling: 500 })
    .then(
      () => true,
      (err: unknown) => {
        t.fail(`the viewport did not draw within ${FIRST_IMAGE_MS / 1000} s: ${String(err).slice(0, 200)}`)
        return false
      },
    )
  const drawnAt = Date.now()
  const shot = join(dir, 'ohif.png')
  await page.screenshot({ path: shot })
  t.comment(
    `page loaded in ${((loaded - started) / 1000).toFixed(1)} s, image drawn ${((drawnAt - loaded) / 1000).toFixed(1)} s later; screenshot ${shot} (kept if the test fails)`,
  )
  const png = await readFile(shot)
  t.ok(png.length > 10_000 && png.subarray(1, 4).toString() === 'PNG', `a screenshot (${png.length} bytes)`)
  const stats = (await page.evaluate(CANVAS_STATS)) as CanvasStats | null
  t.ok(drawn && stats !== null, 'the viewport has a 2D canvas')
  if (stats !== null) {
    t.ok(stats.levels >= 16, `the canvas is not uniform: ${stats.levels} gray levels (${stats.width} x ${stats.height})`)
    t.ok(stats.lit > 0.1, `${Math.round(stats.lit * 100)}% of it lit (the body)`)
    t.ok(stats.center > stats.corner + 16, `the body at its center (${stats.center}) is brighter than the air in its corner (${stats.corner})`)
  }
  // OHIF's error boundary ("Something went wrong"), its study-not-found page, its error notifications.
  const errorUi = await page.evaluate(`({
    wentWrong: /something went wrong/i.test(document.body.innerText),
    notFound: document.querySelector('[data-cy="study-not-found-message"]') !== null,
    errorToasts: document.querySelectorAll('[data-sonner-toast][data-type="error"]').length,
  })`)
  t.same(errorUi, { wentWrong: false, notFound: false, errorToasts: 0 }, 'no error page, message or notification')
  t.same(pageErrors, [], 'no uncaught error in the page')
  t.same(failed, [], 'no request failed (CORS refusals included)')
  t.same(elsewhere, [], 'the page asked nothing of any host but 127.0.0.1')
  t.notOk(page.url().includes(ohif), 'OHIF took the token out of its address bar')
  if (consoleErrors.length > 0) t.comment(`console errors: ${consoleErrors.join(' | ')}`)

  const gets = seen.filter((r) => r.method === 'GET')
  const kinds = {
    qidoStudies: gets.filter((r) => /^\/studies\?/.test(r.url)),
    qidoSeries: gets.filter((r) => /^\/studies\/[^/?]+\/series\?/.test(r.url)),
    metadata: gets.filter((r) => /\/metadata$/.test(r.url)),
    frames: gets.filter((r) => /\/instances\/[^/]+\/frames\/\d+$/.test(r.url)),
  }
  for (const [kind, rs] of Object.entries(kinds)) t.ok(rs.length > 0, `${kind}: ${rs.length} request(s)`)
  t.same(
    gets.filter((r) => r.status !== 200).map((r) => `${r.status} ${r.url.replace(/[0-9.]{8,}/g, '{uid}')}`),
    [],
    "every one of the viewer's requests answered 200",
  )
  t.ok(
    gets.every((r) => r.authorization === `Bearer ${ohif}`),
    'each carried the token as Authorization: Bearer',
  )
  const preflights = seen.filter((r) => r.method === 'OPTIONS')
  t.ok(preflights.length > 0, `${preflights.length} CORS preflights (Authorization and Accept are not CORS-safelisted)`)
  t.ok(
    preflights.every((r) => r.status === 204 && r.headers['access-control-allow-origin'] === viewer.origin),
    "each allowed the viewer's origin",
  )
  t.ok(
    kinds.frames.every((r) => r.headers['cross-origin-resource-policy'] === 'cross-origin' && r.headers['access-control-allow-origin'] === viewer.origin),
    'frames carry Access-Control-Allow-Origin and Cross-Origin-Resource-Policy: cross-origin',
  )

  // The page's own request without the token: 401, readable by the page (CORS headers on the refusal too).
  const anon = await page.evaluate(async (url: string) => (await fetch(url, { headers: { accept: 'application/dicom+json' } })).status, `${base}/studies`)
  t.equal(anon, 401, 'a request from the viewer without the token: 401')

  // radchain's own log of the same requests: the token's client name, the resource level, never a UID. A request is
  // logged once its answer is sent, and the log is written asynchronously: read until the refused one is there.
  type Logged = { method: string; resource: string; client: string; status: number }
  const logged = async (): Promise<Logged[]> =>
    (await readFile(join(dir, 'daemon.log'), 'utf8'))
      .split('\n')
      .filter((l) => l.includes('"dicomweb request"'))
      .map((l) => JSON.parse(l) as Logged)
  const deadline = Date.now() + 20_000
  let lines = await logged()
  while (!lines.some((l) => l.client === '-' && l.status === 401) && Date.now() < deadline) {
    await sleep(100)
    lines = await logged()
  }
  const byOhif = lines.filter((l) => l.client === 'ohif' && l.method === 'GET')
  const resources = new Set(byOhif.filter((l) => l.status === 200).map((l) => l.resource))
  for (const r of ['studies', 'studies/{uid}/series', 'studies/{uid}/series/{uid}/metadata', 'studies/{uid}/series/{uid}/instances/{uid}/frames/{uid}'])
    t.ok(resources.has(r), `radchain logged GET ${r} by the viewer's token, 200`)
  t.ok(
    lines.some((l) => l.client === '-' && l.status === 401),
    'and the request without it, 401',
  )
})

t.test("CORS: an origin not listed gets no CORS header; the viewer's preflight is allowed", async (t) => {
  const preflight = (origin: string): Promise<Response> =>
    fetch(`${base}/studies/${study.studyInstanceUid}/series`, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization, accept' },
    })
  const ok = await preflight(viewer.origin)
  t.equal(ok.status, 204)
  t.equal(ok.headers.get('access-control-allow-origin'), viewer.origin)
  t.match(ok.headers.get('access-control-allow-headers'), /Authorization/)
  const other = await preflight('http://127.0.0.1:1')
  t.equal(other.headers.get('access-control-allow-origin'), null, 'another origin: no Access-Control-Allow-Origin')
  const res = await fetch(`${base}/studies`, { headers: { origin: 'http://127.0.0.1:1', authorization: `Bearer ${ohif}` } })
  t.equal(res.status, 200, 'its request is answered (a browser would keep the answer from its page)')
  t.equal(res.headers.get('access-control-allow-origin'), null)
})
