/**
 * A private Orthanc for a test: Debian's `orthanc` 1.10 with its DICOMweb
 * plugin (`orthanc-dicomweb` 1.7), the real PACS client the DICOMweb server
 * tests talk to. `.ci/run` installs both packages (and keeps the package's
 * own system service off); the tests never install anything.
 *
 * Each Orthanc runs from a fresh temp dir (config, storage, index, logs, the
 * loopback shim below), on HTTP and DICOM ports picked free on 127.0.0.1,
 * with a scrubbed environment (no http_proxy & co. for its libcurl), and is
 * stopped (SIGTERM, SIGKILL after 10 s) and its dir removed at the test's
 * teardown; a failed test keeps the dir and prints where its log is.
 *
 * LOOPBACK ONLY. Orthanc 1.10 has no bind-address option: its HTTP server
 * (civetweb) gets `listening_ports` = the bare port number and its DICOM
 * server (DCMTK's ASC_initializeNetwork) binds INADDR_ANY, so both listen on
 * 0.0.0.0 whatever the config says (`RemoteAccessAllowed: false` only refuses
 * non-local clients after accepting them; there is no `HttpBindAddress` or
 * `DicomBindAddress`, neither in 1.10 nor in upstream's sources of mid-2024). So every Orthanc is started
 * with LD_PRELOAD of a 20-line shim, compiled here with `cc` (gcc, part of
 * the machine and installed by .ci/run when missing), whose bind() rewrites
 * any IPv4 address to 127.0.0.1 and any IPv6 one to ::1, keeping the port.
 * Orthanc's sockets come from civetweb and DCMTK as shared libraries calling
 * libc's bind(), which the shim interposes. startOrthanc() then reads the
 * process's listening sockets from /proc (its fds' socket inodes matched in
 * /proc/<pid>/net/{tcp,tcp6,udp,udp6}) and kills it, failing, if one is not
 * on loopback, so a test never runs against an Orthanc that is reachable from
 * outside. (The alternative, a network namespace per Orthanc, would need
 * routing between namespaces for Orthanc-to-Orthanc traffic and non-loopback
 * addresses for radchain's server; all here stays on 127.0.0.1.)
 *
 * WHAT ORTHANC'S DICOMweb CLIENT SENDS (plugin 1.7: Plugin/DicomWebClient.cpp,
 * Plugin/DicomWebServers.cpp, its OrthancPluginCppWrapper.cpp, and Orthanc
 * 1.10's libcurl HttpClient; confirmed by capturing the raw bytes of real
 * requests on a 127.0.0.1 node:http server). For a server configured as
 * `"Servers": { "<name>": { "Url": "http://host:port/dicom-web/", "HttpHeaders": {...} } }`,
 * the request URL is Url + "/" + path with duplicate slashes collapsed, the
 * configured HttpHeaders (and a request's own "HttpHeaders") are added to
 * every request, and any non-2xx answer fails the job or call.
 *
 * STOW-RS (`POST /dicom-web/servers/<name>/stow` with `{"Resources": [ids]}`;
 * ids of patients, studies, series or instances; synchronous by default):
 * - ONE request for ALL the instances of all the Resources, whatever their
 *   number or their studies: `POST <Url>studies` (no study UID in the path),
 *   HTTP/1.1, a new connection per call.
 * - Headers, exactly (in this order; no User-Agent, no Expect, no Connection):
 *     Host: 127.0.0.1:<port>
 *     Accept: application/dicom+json
 *     Content-Type: multipart/related; type="application/dicom"; boundary=<B>
 *     <the configured and per-request HttpHeaders>
 *     Transfer-Encoding: chunked
 *   `type` is quoted, `boundary` last and unquoted; <B> is a UUID, "-", the
 *   same UUID again (73 chars of [0-9a-f-]). Chunked by default, with no
 *   Content-Length; the chunk sizes are libcurl's (one 0x2e8f chunk for the
 *   whole 11,919-byte body of 3 small files), never aligned with parts. With
 *   the server's user property `"ChunkedTransfers": false` the same body goes
 *   with `Content-Length: <total>` instead of Transfer-Encoding.
 * - Body: for each instance
 *     --<B>\r\nContent-Type: application/dicom\r\nContent-Length: <n>\r\n\r\n<n bytes>\r\n
 *   then `--<B>--` with NO trailing CRLF; no preamble, no epilogue. Every
 *   part has its own Content-Length and no other header. The n bytes are
 *   Orthanc's stored file as is (byte-identical to what was uploaded: the
 *   128-byte preamble, "DICM", the meta header, its transfer syntax).
 * - Expects back a 2xx whose body is JSON (whatever the Content-Type) with a
 *   "00081199" (Referenced SOP Sequence) element, key in upper or lower case,
 *   whose "Value" has exactly as many items as instances sent (the items are
 *   not inspected); "00081198" (Failed SOP Sequence) and "0008119A" (Other
 *   Failures), if present, must have no item. Anything else (or a non-2xx,
 *   e.g. 411 when chunked is refused) fails the job, and the stow call with
 *   it ("The STOW-RS server was only able to receive N instances out of M").
 *
 * QIDO-RS (`POST /dicom-web/servers/<name>/qido` with `{"Uri": "/studies",
 * "Arguments": {...}, "HttpHeaders": {...}}`):
 *     GET <Url>studies?<k>=<v>&... HTTP/1.1
 *     Host: 127.0.0.1:<port>
 *     Accept: *\/*
 *     <the configured and per-request HttpHeaders>
 *   Note `Accept: *\/*` (star slash star, libcurl's default; no
 *   application/dicom+json): the
 *   server must answer DICOM JSON to it. Arguments are URI-encoded and
 *   sorted by key (includefield=00081030&limit=5); a "?" in Uri is refused.
 *   Expects 2xx and a JSON array of DICOM JSON objects (every element an
 *   object with a string "vr"); answers its caller a simplified form
 *   ([{"0020000D": {Group, Element, Name, vr, Value: <Value[0]>}}]). `/get`
 *   sends the same GET (any Uri, e.g. .../metadata) and passes the answer
 *   through raw.
 *
 * WADO-RS (`POST /dicom-web/servers/<name>/retrieve` with
 * `{"Resources": [{"Study": uid, "Series"?: uid, "Instance"?: uid}]}`,
 * synchronous by default): one request per resource, in order,
 *     GET <Url>studies/<uid>[/series/<uid>[/instances/<uid>]] HTTP/1.1
 *     Host: 127.0.0.1:<port>
 *     Accept: multipart/related; type="application/dicom"; transfer-syntax=*
 *     <the configured and per-request HttpHeaders>
 *   (that Accept unless the server's user property
 *   "HasWadoRsUniversalTransferSyntax" is false or the request gives its
 *   own). Expects 2xx with `Content-Type: multipart/related; ...; boundary=...`
 *   (a boundary parameter is required; no Content-Type at all fails) whose
 *   parts each have `Content-Type: application/dicom` (parameters allowed;
 *   per-part Content-Length not needed); each part is stored as an instance.
 */
import type { Test } from 'tap'
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs'
import { mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** The Orthanc server binary (Debian's orthanc puts it in /usr/sbin). */
export const ORTHANC = process.env.ORTHANC ?? '/usr/sbin/Orthanc'
/** The DICOMweb plugin (Debian's orthanc-dicomweb: a link to /usr/lib/orthanc/libOrthancDicomWeb.so.1.7). */
export const ORTHANC_DICOMWEB = process.env.ORTHANC_DICOMWEB ?? '/usr/share/orthanc/plugins/libOrthancDicomWeb.so'
/** The C compiler that builds the loopback shim. */
const CC = process.env.CC ?? 'cc'

const READY_TIMEOUT_MS = 30_000
const STOP_GRACE_MS = 10_000
const REQUEST_TIMEOUT_MS = 120_000

export interface DicomWebServer {
  /** Root of the remote DICOMweb API, e.g. `http://127.0.0.1:1234/dicom-web/`. */
  url: string
  /** Sent with every request to that server (Orthanc's "HttpHeaders"). */
  headers?: Record<string, string>
  /** Orthanc's "ChunkedTransfers" user property: false sends STOW bodies with a Content-Length (default true: chunked). */
  chunkedTransfers?: boolean
}

export interface OrthancOpts {
  /** The DICOMweb servers this Orthanc can talk to, by name (`/dicom-web/servers/<name>/...`). */
  dicomWebServers?: Record<string, DicomWebServer>
  /** Orthanc's "Name", and the base of the temp dir's name and of the AET. */
  name?: string
  /** The DICOM AET (default: the name in upper case, at most 16 characters). */
  aet?: string
  /** Enables the DICOM (DIMSE) server, on a free port on 127.0.0.1 (default off). */
  dicom?: boolean
  /** Merged over the generated configuration last (e.g. "DicomModalities"). */
  config?: Record<string, unknown>
}

export interface OrthancResponse {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
  text(): string
  json<T = unknown>(): T
}

/** What Orthanc answers to `POST /instances`. */
export interface UploadResult {
  ID: string
  Path: string
  Status: string
  ParentPatient: string
  ParentStudy: string
  ParentSeries: string
}

export interface ListeningSocket {
  proto: 'tcp' | 'tcp6' | 'udp' | 'udp6'
  address: string
  port: number
  loopback: boolean
}

export interface Orthanc {
  /** `http://127.0.0.1:<port>`, without a trailing slash. */
  url: string
  httpPort: number
  /** 0 when the DICOM server is off. */
  dicomPort: number
  aet: string
  name: string
  dir: string
  logFile: string
  pid: number
  /** Sends one request to Orthanc's REST API; a plain object body is sent as JSON. */
  request(method: string, path: string, body?: Buffer | string | object, headers?: Record<string, string>): Promise<OrthancResponse>
  /** Stores a DICOM file (`POST /instances`); throws unless Orthanc answers 200. */
  upload(file: Buffer): Promise<UploadResult>
  /** The process's listening sockets (TCP LISTEN, bound UDP). */
  listening(): Promise<ListeningSocket[]>
  /** Stops the process (idempotent) and removes the dir unless the test failed. */
  stop(): Promise<void>
}

function onPath(cmd: string): boolean {
  if (cmd.includes('/')) return existsSync(cmd)
  return (process.env.PATH ?? '').split(delimiter).some((d) => d !== '' && existsSync(join(d, cmd)))
}

/** Whether startOrthanc() can run here, and if not, why (naming the Debian packages). */
export function orthancAvailable(): { ok: true } | { ok: false; why: string } {
  const fix = 'install them (apt-get install orthanc orthanc-dicomweb) or run .ci/run as root'
  if (!existsSync(ORTHANC)) return { ok: false, why: `${ORTHANC} not found: the Orthanc tests need Debian's orthanc and orthanc-dicomweb packages; ${fix}` }
  if (!existsSync(ORTHANC_DICOMWEB))
    return { ok: false, why: `${ORTHANC_DICOMWEB} not found: the Orthanc tests need the DICOMweb plugin, Debian's orthanc-dicomweb package; ${fix}` }
  if (!onPath(CC))
    return {
      ok: false,
      why: `${CC} not found: the Orthanc tests compile a loopback-only bind() shim for Orthanc; install Debian's gcc and libc6-dev (apt-get install gcc libc6-dev) or run .ci/run as root`,
    }
  return { ok: true }
}

/** bind() that keeps every socket on loopback (see the top of this file). */
const SHIM_C = `#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);
int bind(int fd, const struct sockaddr *addr, socklen_t len) {
  static bind_fn real;
  if (real == NULL) real = (bind_fn)dlsym(RTLD_NEXT, "bind");
  if (addr != NULL && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
    struct sockaddr_in a;
    memcpy(&a, addr, sizeof a);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return real(fd, (const struct sockaddr *)&a, sizeof a);
  }
  if (addr != NULL && addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
    struct sockaddr_in6 a;
    memcpy(&a, addr, sizeof a);
    a.sin6_addr = in6addr_loopback;
    return real(fd, (const struct sockaddr *)&a, sizeof a);
  }
  return real(fd, addr, len);
}
`

async function buildShim(dir: string): Promise<string> {
  const src = join(dir, 'bind-loopback.c')
  const so = join(dir, 'bind-loopback.so')
  await writeFile(src, SHIM_C)
  try {
    await run(CC, ['-shared', '-fPIC', '-O2', '-Wall', '-o', so, src, '-ldl'])
  } catch (err) {
    const e = err as { stderr?: string; message: string }
    throw new Error(`could not compile Orthanc's loopback shim with ${CC} (Debian's gcc and libc6-dev): ${(e.stderr ?? e.message).trim()}`, {
      cause: err,
    })
  }
  return so
}

/** Ports free on 127.0.0.1 right now (held together so that they differ). */
async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = []
  try {
    for (let i = 0; i < n; i++) {
      const s = createServer()
      servers.push(s)
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject)
        s.listen(0, '127.0.0.1', () => resolve())
      })
    }
    return servers.map((s) => (s.address() as AddressInfo).port)
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))))
  }
}

function httpCall(
  port: number,
  method: string,
  path: string,
  body?: Buffer | string | object,
  headers: Record<string, string> = {},
  timeoutMs = REQUEST_TIMEOUT_MS,
): Promise<OrthancResponse> {
  let payload: Buffer | undefined
  const h: Record<string, string> = { ...headers }
  if (Buffer.isBuffer(body)) payload = body
  else if (typeof body === 'string') payload = Buffer.from(body)
  else if (body !== undefined) {
    payload = Buffer.from(JSON.stringify(body))
    if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['Content-Type'] = 'application/json'
  }
  if (payload !== undefined) h['Content-Length'] = String(payload.length)
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers: h, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.once('error', reject)
      res.once('end', () => {
        const buf = Buffer.concat(chunks)
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: buf,
          text: () => buf.toString('utf8'),
          json: <T>() => JSON.parse(buf.toString('utf8')) as T,
        })
      })
    })
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path}: no answer from Orthanc in ${timeoutMs} ms`)))
    req.once('error', reject)
    req.end(payload)
  })
}

/** "0100007F" (IPv4) or 32 hex digits (IPv6), as the kernel prints them (32-bit words in host order). */
function procAddress(hex: string): { address: string; loopback: boolean } {
  const bytes: number[] = []
  for (let w = 0; w < hex.length; w += 8) {
    const word = hex.slice(w, w + 8)
    for (let b = 6; b >= 0; b -= 2) bytes.push(parseInt(word.slice(b, b + 2), 16))
  }
  if (bytes.length === 4) return { address: bytes.join('.'), loopback: bytes[0] === 127 }
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16))
  const address = new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1)
  const v4mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff
  return { address, loopback: address === '::1' || (v4mapped && bytes[12] === 127) }
}

/** The listening TCP sockets and bound UDP sockets of a process, from /proc (Linux). */
export async function listeningSockets(pid: number): Promise<ListeningSocket[]> {
  const inodes = new Set<string>()
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(await readlink(`/proc/${pid}/fd/${fd}`))
      if (m !== null) inodes.add(m[1])
    } catch {
      // closed meanwhile
    }
  }
  const out: ListeningSocket[] = []
  for (const proto of ['tcp', 'tcp6', 'udp', 'udp6'] as const) {
    let table: string
    try {
      table = await readFile(`/proc/${pid}/net/${proto}`, 'utf8')
    } catch {
      continue
    }
    for (const line of table.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      if (f.length < 10 || !inodes.has(f[9])) continue
      // TCP: 0A is LISTEN. UDP: 07 is a bound (unconnected) socket, i.e. one that receives from anyone.
      if (f[3] !== (proto.startsWith('tcp') ? '0A' : '07')) continue
      const [addrHex, portHex] = f[1].split(':')
      out.push({ proto, port: parseInt(portHex, 16), ...procAddress(addrHex) })
    }
  }
  return out
}

/** Whether a process with that pid exists (and is not a zombie). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

/** Orthancs still running, killed if the test process exits without stopping them. */
const live = new Set<ChildProcess>()
let exitHookInstalled = false
function trackLive(p: ChildProcess): void {
  live.add(p)
  if (!exitHookInstalled) {
    exitHookInstalled = true
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL')
    })
  }
}

async function tail(file: string, lines = 40): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).split('\n').slice(-lines).join('\n')
  } catch {
    return '(no log)'
  }
}

/** SIGTERM, then SIGKILL after the grace period; resolves once the process has exited. */
async function terminate(p: ChildProcess, exited: Promise<void>): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return
  p.kill('SIGTERM')
  let timer: NodeJS.Timeout | undefined
  const killed = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      p.kill('SIGKILL')
      resolve()
    }, STOP_GRACE_MS)
  })
  await Promise.race([exited, killed])
  clearTimeout(timer)
  await exited
}

function aetOf(name: string): string {
  const a = name
    .toUpperCase()
    .replace(/[^A-Z0-9_]/g, '_')
    .slice(0, 16)
  return a === '' ? 'ORTHANC' : a
}

interface Started {
  child: ChildProcess
  exited: Promise<void>
  httpPort: number
  dicomPort: number
}

async function launch(dir: string, shim: string, opts: OrthancOpts, name: string, aet: string, logFile: string, stdioFile: string): Promise<Started> {
  const [httpPort, dicomPort] = await freePorts(2)
  const servers: Record<string, Record<string, unknown>> = {}
  for (const [n, s] of Object.entries(opts.dicomWebServers ?? {})) {
    servers[n] = {
      Url: s.url,
      ...(s.headers ? { HttpHeaders: s.headers } : {}),
      ...(s.chunkedTransfers !== undefined ? { ChunkedTransfers: s.chunkedTransfers } : {}),
    }
  }
  const config = {
    Name: name,
    StorageDirectory: join(dir, 'storage'),
    IndexDirectory: join(dir, 'index'),
    HttpServerEnabled: true,
    HttpPort: httpPort,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: false,
    DicomServerEnabled: opts.dicom === true,
    DicomPort: dicomPort,
    DicomAet: aet,
    Plugins: [ORTHANC_DICOMWEB],
    OrthancExplorerEnabled: false,
    WebDavEnabled: false,
    HttpDescribeErrors: true,
    ExecuteLuaEnabled: false,
    RestApiWriteToFileSystemEnabled: false,
    SaveJobs: false,
    HttpProxy: '',
    DicomWeb: { Enable: true, Root: '/dicom-web/', Servers: servers },
    ...opts.config,
  }
  const configFile = join(dir, 'orthanc.json')
  await writeFile(configFile, JSON.stringify(config, null, 2))
  const out = openSync(stdioFile, 'a')
  let child: ChildProcess
  try {
    // A clean environment: no http_proxy & co. for Orthanc's libcurl, nothing of the caller's.
    const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: dir, LANG: 'C.UTF-8', TZ: 'UTC', LD_PRELOAD: shim }
    child = spawn(ORTHANC, [`--logfile=${logFile}`, configFile], { cwd: dir, env, stdio: ['ignore', out, out] })
  } finally {
    closeSync(out)
  }
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve())
    child.once('error', () => resolve())
  })
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve))
  trackLive(child)
  const deadline = Date.now() + READY_TIMEOUT_MS
  for (;;) {
    const err = await Promise.race([spawnError, new Promise<undefined>((r) => setTimeout(() => r(undefined), 100))])
    if (err !== undefined) throw new Error(`could not start ${ORTHANC}: ${err.message}`)
    if (child.exitCode !== null || child.signalCode !== null) {
      live.delete(child)
      const log = (await tail(logFile)) + '\n' + (await tail(stdioFile, 10))
      const e = new Error(`Orthanc exited (${child.exitCode ?? child.signalCode}) before answering; log ${logFile}:\n${log}`)
      ;(e as Error & { portInUse?: boolean }).portInUse = /already in use/i.test(log)
      throw e
    }
    try {
      const r = await httpCall(httpPort, 'GET', '/system', undefined, {}, 2_000)
      if (r.status === 200) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await terminate(child, exited)
      live.delete(child)
      throw new Error(`Orthanc did not answer GET /system within ${READY_TIMEOUT_MS} ms; log ${logFile}:\n${await tail(logFile)}`)
    }
  }
  return { child, exited, httpPort, dicomPort: opts.dicom === true ? dicomPort : 0 }
}

/**
 * Starts a private Orthanc (see the top of this file) and registers its
 * stop() as a teardown of `t`. Throws, naming the Debian packages, when
 * Orthanc or its DICOMweb plugin is missing; throws (having killed it) if it
 * listens anywhere but on loopback.
 */
export async function startOrthanc(t: Test, opts: OrthancOpts = {}): Promise<Orthanc> {
  const avail = orthancAvailable()
  if (!avail.ok) throw new Error(avail.why)
  const name = opts.name ?? 'orthanc'
  const aet = opts.aet ?? aetOf(name)
  const dir = await mkdtemp(join(tmpdir(), `radchain-orthanc-${name.replace(/[^A-Za-z0-9_-]/g, '_')}-`))
  const logFile = join(dir, 'orthanc.log')
  const stdioFile = join(dir, 'stdio.log')
  const shim = await buildShim(dir)
  let started: Started | undefined
  for (let attempt = 1; started === undefined; attempt++) {
    try {
      started = await launch(dir, shim, opts, name, aet, logFile, stdioFile)
    } catch (err) {
      // Another process took a port between freePorts() and Orthanc's bind: try new ones.
      if ((err as { portInUse?: boolean }).portInUse === true && attempt < 3) continue
      throw new Error(`${(err as Error).message}\n(Orthanc dir kept: ${dir})`, { cause: err })
    }
  }
  const { child, exited, httpPort, dicomPort } = started
  const pid = child.pid as number

  let stopping: Promise<void> | undefined
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await terminate(child, exited)
      live.delete(child)
      if (t.passing()) await rm(dir, { recursive: true, force: true })
      else {
        const msg = `Orthanc "${name}" kept for the failed test: ${dir} (log ${logFile})`
        try {
          t.comment(msg)
        } catch {
          console.error(msg)
        }
      }
    })()
    return stopping
  }
  t.teardown(stop)

  const listening = (): Promise<ListeningSocket[]> => listeningSockets(pid)
  const socks = await listening()
  const outside = socks.filter((s) => !s.loopback)
  if (outside.length > 0 || !socks.some((s) => s.port === httpPort)) {
    await terminate(child, exited)
    live.delete(child)
    throw new Error(
      `Orthanc "${name}" must listen on loopback only (HTTP port ${httpPort}), but listens on ${socks.map((s) => `${s.proto} ${s.address}:${s.port}`).join(', ') || 'nothing'}: the LD_PRELOAD bind() shim did not apply (dir kept: ${dir})`,
    )
  }

  const url = `http://127.0.0.1:${httpPort}`
  return {
    url,
    httpPort,
    dicomPort,
    aet,
    name,
    dir,
    logFile,
    pid,
    request: (method, path, body, headers) => httpCall(httpPort, method, path, body, headers),
    upload: async (file) => {
      const r = await httpCall(httpPort, 'POST', '/instances', file, { 'Content-Type': 'application/dicom' })
      if (r.status !== 200) throw new Error(`Orthanc "${name}": POST /instances answered ${r.status}: ${r.text().slice(0, 500)}`)
      return r.json<UploadResult>()
    },
    listening,
    stop,
  }
}
