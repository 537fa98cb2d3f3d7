/**
 * A real web viewer for the DICOMweb tests: OHIF (npm's `@ohif/app`, its
 * built `dist/`) served statically from its own origin on 127.0.0.1, opened
 * in Debian's headless Chromium driven by puppeteer-core.
 *
 * Neither OHIF nor the browser comes with `npm ci`, and the tests install
 * nothing: `.ci/run` (as root) installs Debian's `chromium`,
 * and, after `npm ci`, unpacks @ohif/app's tarball into node_modules
 * (scripts/install-ohif.sh, which checks the tarball against a pinned
 * integrity). @ohif/app cannot be a devDependency: it lists as dependencies
 * versions of @ohif/i18n and @ohif/ui that npm does not have (3.13.2), so
 * `npm install @ohif/app` fails; only its built `dist/` is needed anyway.
 * puppeteer-core is a devDependency: it drives a browser, never downloads one.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import { extname, join, normalize, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The OHIF release the tests run, the one scripts/install-ohif.sh installs. */
export const OHIF_VERSION = '3.13.2'
/** Where scripts/install-ohif.sh unpacks it. */
export const OHIF_DIST = fileURLToPath(new URL('../../node_modules/@ohif/app/dist/', import.meta.url))
/** The browser: Debian's chromium, or another one named by CHROMIUM. */
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium'

/**
 * Throws, saying how to install what is missing, unless OHIF's build (of
 * OHIF_VERSION) and Chromium are both there: a test that needs them fails
 * rather than skips.
 */
export function ensureViewer(): void {
  const missing: string[] = []
  let version: string | undefined
  try {
    version = (JSON.parse(readFileSync(join(OHIF_DIST, '..', 'package.json'), 'utf8')) as { version?: string }).version
  } catch {
    version = undefined
  }
  if (version !== OHIF_VERSION || !existsSync(join(OHIF_DIST, 'index.html')))
    missing.push(
      `OHIF ${OHIF_VERSION} is not in ${OHIF_DIST} (found ${version ?? 'nothing'}): run scripts/install-ohif.sh after npm ci (.ci/run does), it unpacks npm's @ohif/app ${OHIF_VERSION} there`,
    )
  const v = existsSync(CHROMIUM) ? spawnSync(CHROMIUM, ['--version'], { encoding: 'utf8', timeout: 30_000 }) : undefined
  if (v === undefined || v.status !== 0)
    missing.push(
      `${CHROMIUM} not found or not working: install Debian's chromium (apt-get install chromium) or run .ci/run as root, or name another with CHROMIUM`,
    )
  if (missing.length > 0) throw new Error(missing.join('; '))
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.onnx': 'application/octet-stream',
}

/** OHIF served from an origin of its own. */
export interface ViewerServer {
  /** `http://127.0.0.1:<port>` */
  readonly origin: string
  /** Replaces the `app-config.js` served from now on. */
  setAppConfig(text: string): void
  close(): Promise<void>
}

/**
 * Serves OHIF_DIST on 127.0.0.1 (a free port) the way OHIF's deployment
 * docs ask: any path that is not a file is the single-page app's
 * index.html, and every answer carries `Cross-Origin-Opener-Policy:
 * same-origin` and `Cross-Origin-Embedder-Policy: require-corp`, so that
 * the page is cross-origin isolated and OHIF may use SharedArrayBuffer
 * (docs/deployment/cors.md). `app-config.js` is the one given.
 */
export async function serveViewer(): Promise<ViewerServer> {
  let appConfig = ''
  const server: Server = createServer((req, res) => {
    void (async () => {
      const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)
      const headers = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' }
      if (path === '/app-config.js') {
        res.writeHead(200, { ...headers, 'content-type': TYPES['.js'] }).end(appConfig)
        return
      }
      const file = normalize(join(OHIF_DIST, path))
      const isFile = file.startsWith(OHIF_DIST.endsWith(sep) ? OHIF_DIST : OHIF_DIST + sep) && (await stat(file).catch(() => undefined))?.isFile() === true
      // A missing script or image is a 404; any other path is a route of the app.
      if (!isFile && extname(path) !== '' && extname(path) !== '.html') {
        res.writeHead(404, headers).end()
        return
      }
      const served = isFile ? file : join(OHIF_DIST, 'index.html')
      const body = await readFile(served)
      res.writeHead(200, { ...headers, 'content-type': TYPES[extname(served)] ?? 'application/octet-stream', 'content-length': body.length }).end(body)
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500).end()
      else res.destroy()
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const a = server.address()
  if (a === null || typeof a === 'string') throw new Error('the viewer server has no port')
  return {
    origin: `http://127.0.0.1:${a.port}`,
    setAppConfig: (text) => {
      appConfig = text
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

/** The DICOMweb root in README's OHIF `app-config.js` excerpt, replaced by a test daemon's. */
export const README_DICOMWEB_ROOT = 'https://radchain.example.org:7462/dicomweb'

/**
 * README's OHIF `app-config.js` excerpt (the ```js block that starts with
 * `window.config = {`), its DICOMweb root replaced by `root`: the test runs
 * what the README tells an operator to write.
 */
export async function readmeAppConfig(root: string): Promise<string> {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8')
  const m = /```js\n(window\.config = \{\n[\s\S]*?\n\})\n```/.exec(readme)
  if (m?.[1] === undefined) throw new Error('README has no OHIF app-config.js excerpt (a ```js block that starts with `window.config = {`)')
  if (!m[1].includes(README_DICOMWEB_ROOT)) throw new Error(`README's OHIF app-config.js excerpt does not name ${README_DICOMWEB_ROOT}`)
  return m[1].replaceAll(README_DICOMWEB_ROOT, root) + '\n'
}
