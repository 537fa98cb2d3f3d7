import { spawn } from 'node:child_process'
import { openSync, closeSync } from 'node:fs'
import { mkdir, readFile, rm } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { z } from 'zod'
import { genesisToJSON, withDefaults, type Genesis } from '../chain/index.js'
import { ApiClient, ApiError, isJobOfKind, type DaemonInfo, type NodeStatus, type StudyJobView } from '../api/index.js'
import { DATADIR_FILES, FAULTS_FILE, daemonEnv, initDataDir, parseFaults, type FaultsJSON, type NodeConfigJSON } from '../node/index.js'
import { RadError, exists, fromHex, sleep, writeFileAtomic } from '../util/index.js'
import { daemonNodeArgs, devnetDaemonPath } from './process.js'
import { addHost, assertHostsSupported, hostAddressOf, hostsNetFor, namespaceOf, removeHosts, shapeUplink, type HostsNet } from './hosts.js'
import { DevnetError, type DevnetCode } from './errors.js'

/** One organization of a devnet. */
export interface DevnetOrg {
  readonly id: string
  readonly dir: string
  readonly apiPort: number
  readonly p2pPort: number
  readonly signKey: string
  readonly encKey: string
  /** In a devnet of hosts: its network namespace and its address there (src/devnet/hosts.ts). */
  readonly netns?: string
  readonly host?: string
}

/** The devnet manifest, `<dir>/devnet.json`. */
export interface DevnetManifest {
  readonly chainId: string
  readonly orgs: readonly DevnetOrg[]
  /** Current partition: for each org id, the org ids it refuses. */
  readonly blocked: Readonly<Record<string, readonly string[]>>
  /** A devnet of hosts: its network, and the uplink rates (Mbit/s) of the organizations whose links are shaped. */
  readonly hosts?: HostsNet & { readonly linkMbit: Readonly<Record<string, number>> }
}

/** Options of `devnet up`. */
export interface DevnetUpOpts {
  readonly dir: string
  readonly orgs: number
  readonly basePort: number
  /** Consensus and chain timing suited to a local devnet (ms). */
  readonly blockIntervalMs?: number
  readonly maxBlockTxs?: number
  readonly timeoutProposeMs?: number
  /** Study chunk size of the chain (default 1 MiB; tests use smaller chunks to have many). */
  readonly chunkSize?: number
  /** Organizations that hold each study (default 3). */
  readonly replicationFactor?: number
  /** Extra config for every node (tests). */
  readonly config?: NodeConfigJSON
  /** Extra config per org id. */
  readonly orgConfig?: Readonly<Record<string, NodeConfigJSON>>
  /** Fault switches per org id, written to its faults.json (tests and benchmarks; see src/node/faults.ts). */
  readonly orgFaults?: Readonly<Record<string, FaultsJSON>>
  /**
   * Each organization in its own network namespace, with its own address on
   * a bridge (src/devnet/hosts.ts): a network of hosts on this machine. Root
   * and iproute2 only.
   */
  readonly hosts?: boolean
  /** Uplink rates in Mbit/s by org id (a devnet of hosts; see parseLinkMbit); kept in the manifest, applied at every `up`. */
  readonly linkMbit?: Readonly<Record<string, number>>
  readonly log?: (line: string) => void
}

/** Default first port: org k gets API port base + 2(k-1) and p2p port base + 2(k-1) + 1. */
export const DEFAULT_BASE_PORT = 7600
const MANIFEST = 'devnet.json'
// Devnet scrypt cost: the keystores guard throwaway keys on one machine.
const DEVNET_SCRYPT = { N: 1 << 12, r: 8, p: 1 }

/** Prefix of every devnet's chain id (a devnet daemon refuses any other chain). */
export const DEVNET_CHAIN_PREFIX = 'radchain-devnet-'

const OrgSchema = z.object({
  id: z.string().regex(/^org[0-9]+$/),
  dir: z.string().min(1),
  apiPort: z.number().int().min(0).max(65535),
  p2pPort: z.number().int().min(0).max(65535),
  signKey: z.string().regex(/^[0-9a-f]{64}$/),
  encKey: z.string().regex(/^[0-9a-f]{64}$/),
  netns: z
    .string()
    .regex(/^rc-[0-9a-f]{6}-org[0-9]+$/)
    .optional(),
  host: z.ipv4().optional(),
})
const ManifestSchema = z.object({
  chainId: z.string().startsWith(DEVNET_CHAIN_PREFIX),
  orgs: z.array(OrgSchema),
  blocked: z.record(z.string(), z.array(z.string())),
  hosts: z
    .object({
      tag: z.string().regex(/^[0-9a-f]{6}$/),
      bridge: z.string().regex(/^rcb-[0-9a-f]{6}$/),
      subnet: z.string().regex(/^10\.\d{1,3}\.\d{1,3}$/),
      linkMbit: z.record(z.string(), z.number().positive()),
    })
    .optional(),
})

/**
 * Reads `<dir>/devnet.json`. The manifest is checked: a devnet chain id, and
 * every organization's data dir `<dir>/<org id>` (so a devnet command never
 * starts a devnet daemon, with its fault switches and partition route, on a
 * data dir elsewhere).
 */
export async function loadManifest(dir: string): Promise<DevnetManifest> {
  let json: unknown
  try {
    json = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8'))
  } catch {
    throw new DevnetError('DEVNET_NOT_FOUND', `no devnet in ${dir} (run \`radchain devnet up --dir ${dir}\`)`)
  }
  const r = ManifestSchema.safeParse(json)
  const bad = r.success ? r.data.orgs.find((o) => resolve(o.dir) !== join(resolve(dir), o.id)) : undefined
  if (!r.success || bad !== undefined) {
    throw new DevnetError(
      'DEVNET_NOT_FOUND',
      `${join(dir, MANIFEST)} is not a devnet manifest${bad === undefined ? '' : `: ${bad.id}'s data dir is not ${join(resolve(dir), bad.id)}`}`,
    )
  }
  return r.data
}

/**
 * Whether `dataDir` is an organization of a devnet: `<devnet>/<org id>`, named
 * in `<devnet>/devnet.json`, on a devnet chain. The devnet's daemon entry
 * refuses anything else.
 */
export async function isDevnetOrgDir(dataDir: string): Promise<boolean> {
  const dir = resolve(dataDir)
  try {
    const m = await loadManifest(dirname(dir))
    const genesis = JSON.parse(await readFile(join(dir, DATADIR_FILES.genesis), 'utf8')) as { chainId?: unknown }
    return m.orgs.some((o) => resolve(o.dir) === dir) && genesis.chainId === m.chainId
  } catch {
    return false
  }
}

async function saveManifest(dir: string, m: DevnetManifest): Promise<void> {
  await writeFileAtomic(join(dir, MANIFEST), JSON.stringify(m, null, 2) + '\n')
}

/** The organization `id` ("org2" or "2") of a devnet. */
export function orgOf(m: DevnetManifest, id: string): DevnetOrg {
  const want = /^\d+$/.test(id) ? `org${id}` : id
  const o = m.orgs.find((x) => x.id === want)
  if (o === undefined)
    throw new DevnetError('DEVNET_BAD_ORG', `no organization ${JSON.stringify(id)} in this devnet (have ${m.orgs.map((x) => x.id).join(', ')})`)
  return o
}

async function daemonInfo(o: DevnetOrg): Promise<DaemonInfo | undefined> {
  try {
    return JSON.parse(await readFile(join(o.dir, DATADIR_FILES.daemon), 'utf8')) as DaemonInfo
  } catch {
    return undefined
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** The running daemon's pid for `o`, if any. */
export async function pidOf(o: DevnetOrg): Promise<number | undefined> {
  const info = await daemonInfo(o)
  return info !== undefined && alive(info.pid) ? info.pid : undefined
}

/** An API client for `o`'s running daemon. */
export async function clientOf(o: DevnetOrg): Promise<ApiClient> {
  const info = await daemonInfo(o)
  if (info === undefined || !alive(info.pid)) throw new DevnetError('DEVNET_NOT_RUNNING', `${o.id} is not running`)
  const token = (await readFile(join(o.dir, DATADIR_FILES.apiToken), 'utf8')).trim()
  return new ApiClient({ url: info.api, token, timeoutMs: 10_000, ...(info.socket === undefined ? {} : { socketPath: info.socket }) })
}

/**
 * Starts `o`'s daemon as a detached process (it outlives the command that
 * started it; logs go to `<org dir>/daemon.log`) and waits until its API
 * answers. The deadline is generous: a daemon that exits is reported at
 * once, and the first start on a fresh clone loads its modules from a cold
 * disk cache (four daemons and a test runner on two cores took 15 s from the
 * ledger to the p2p listener, 24 s in all, and a CI run failed at 30 s).
 */
export async function startOrg(o: DevnetOrg, timeoutMs = 90_000): Promise<ApiClient> {
  if ((await pidOf(o)) !== undefined) return clientOf(o)
  await rm(join(o.dir, DATADIR_FILES.daemon), { force: true })
  const log = openSync(join(o.dir, 'daemon.log'), 'a')
  // The devnet's own daemon entry: `radchain daemon` with the fault switches of faults.json and the partition route.
  const argv = [process.execPath, ...daemonNodeArgs(), devnetDaemonPath(), '--dir', o.dir]
  // In a devnet of hosts the daemon runs in its organization's namespace (`ip netns exec` execs it: same pid).
  const [cmd, ...args] = o.netns === undefined ? argv : ['ip', 'netns', 'exec', o.netns, ...argv]
  const child = spawn(cmd as string, args, { stdio: ['ignore', log, log], detached: true, env: daemonEnv() })
  closeSync(log)
  let exited = false
  child.once('exit', () => {
    exited = true
  })
  child.unref()
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (exited) {
      const tail = await readFile(join(o.dir, 'daemon.log'), 'utf8').catch(() => '')
      throw new DevnetError('DEVNET_DAEMON_EXITED', `${o.id} exited at start: ${tail.trim().split('\n').slice(-2).join(' | ')}`)
    }
    const info = await daemonInfo(o)
    if (info !== undefined && info.pid === child.pid) {
      try {
        const c = await clientOf(o)
        await c.status()
        return c
      } catch {
        // not answering yet
      }
    }
    await sleep(50)
  }
  throw new DevnetError('DEVNET_START_TIMEOUT', `${o.id} did not come up within ${timeoutMs / 1000} s`)
}

/** Sends `signal` to `o`'s daemon and waits until it is gone (SIGKILL after 10 s). */
export async function stopOrg(o: DevnetOrg, signal: NodeJS.Signals = 'SIGTERM'): Promise<boolean> {
  const pid = await pidOf(o)
  if (pid === undefined) return false
  process.kill(pid, signal)
  const deadline = Date.now() + 10_000
  while (alive(pid)) {
    if (Date.now() > deadline) process.kill(pid, 'SIGKILL')
    await sleep(20)
  }
  return true
}

/**
 * Polls a daemon job of the given kind (`add` for `study add`, `get` for
 * `study get`) every `intervalMs` until it is done, and returns its view; a
 * failed job throws a RadError with the job's code and message.
 */
export async function waitJob<K extends StudyJobView['kind']>(
  client: ApiClient,
  id: string,
  kind: K,
  intervalMs = 50,
): Promise<Extract<StudyJobView, { kind: K }>> {
  for (;;) {
    const j = await client.job(id)
    if (!isJobOfKind(j, kind)) throw new ApiError('API_BAD_RESPONSE', `job ${id} is a study ${j.kind} job, not a study ${kind} job`, 0)
    if (j.state === 'done') return j
    if (j.state === 'failed') throw new RadError(j.error?.code ?? ('JOB_FAILED' satisfies DevnetCode), j.error?.message ?? 'the job failed')
    await sleep(intervalMs)
  }
}

/** Waits until every listed org's height reaches `height`. */
export async function waitHeight(m: DevnetManifest, height: number, opts: { orgs?: readonly DevnetOrg[]; timeoutMs?: number } = {}): Promise<NodeStatus[]> {
  const orgs = opts.orgs ?? m.orgs
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000)
  for (;;) {
    const st = await Promise.all(orgs.map(async (o) => (await clientOf(o)).status().catch(() => undefined)))
    if (st.every((s) => s !== undefined && s.height >= height)) return st as NodeStatus[]
    if (Date.now() > deadline)
      throw new DevnetError(
        'DEVNET_START_TIMEOUT',
        `not every node reached height ${height}: ${st.map((s, i) => `${orgs[i]?.id}=${s?.height ?? 'down'}`).join(' ')}`,
      )
    await sleep(100)
  }
}

/**
 * Creates organization number `i` (`org<i>`) in `<dir>/org<i>`: keys, and a
 * config with devnet timing and ports base + 2(i-1) (API) and the next (p2p).
 * Its genesis is written separately.
 */
export async function createOrgDir(
  dir: string,
  i: number,
  opts: Pick<DevnetUpOpts, 'basePort' | 'config' | 'orgConfig' | 'orgFaults' | 'timeoutProposeMs'> & { net?: HostsNet },
): Promise<DevnetOrg> {
  const id = `org${i}`
  const apiPort = opts.basePort + 2 * (i - 1)
  const p2pPort = apiPort + 1
  const orgDir = join(resolve(dir), id)
  // On a devnet of hosts, p2p listens on the organization's own address; the API on its namespace's loopback.
  const host = opts.net === undefined ? undefined : hostAddressOf(opts.net, i)
  const listen = [`/ip4/${host ?? '127.0.0.1'}/tcp/${p2pPort}`]
  const config: NodeConfigJSON = {
    logLevel: 'info',
    ...opts.config,
    ...opts.orgConfig?.[id],
    consensus: {
      timeoutProposeMs: opts.timeoutProposeMs ?? 1000,
      timeoutVoteMs: 500,
      timeoutDeltaMs: 250,
      timeoutCapMs: 5000,
      gossipMs: 500,
      ...opts.config?.consensus,
      ...opts.orgConfig?.[id]?.consensus,
    },
    p2p: { listen, dialIntervalMs: 250 },
  }
  // DICOMweb on any free port of the organization's loopback (daemon.json says which); a test may set its own.
  const dicomwebListen = config.dicomweb?.listen ?? '127.0.0.1:0'
  const r = await initDataDir({ dir: orgDir, orgId: id, apiPort, dicomwebListen, p2pListen: listen, scrypt: DEVNET_SCRYPT, config, env: {} })
  const o: DevnetOrg = {
    id,
    dir: orgDir,
    apiPort,
    p2pPort,
    signKey: r.signKey,
    encKey: r.encKey,
    ...(opts.net === undefined || host === undefined ? {} : { netns: namespaceOf(opts.net, id), host }),
  }
  const faults = opts.orgFaults?.[id]
  if (faults !== undefined) await setOrgFaults(o, faults)
  return o
}

/**
 * Writes `o`'s fault switches (faults.json, checked first); they apply from
 * its next start. Tests and benchmarks only.
 */
export async function setOrgFaults(o: DevnetOrg, faults: FaultsJSON): Promise<void> {
  parseFaults(faults)
  await writeFileAtomic(join(o.dir, FAULTS_FILE), JSON.stringify(faults, null, 2) + '\n')
}

/**
 * Adds organization `org<n+1>` to an existing devnet's folder (keys, config,
 * the devnet's genesis) without admitting or starting it: the authorities
 * admit it by vote (`radchain org admit`), then `devnet start` runs it.
 */
export async function devnetAddOrg(
  dir: string,
  opts: Pick<DevnetUpOpts, 'config' | 'orgConfig' | 'orgFaults' | 'timeoutProposeMs'> & { basePort?: number } = {},
): Promise<DevnetOrg> {
  const m = await loadManifest(dir)
  const first = m.orgs[0] as DevnetOrg
  const net = m.hosts
  const o = await createOrgDir(dir, m.orgs.length + 1, { ...opts, basePort: opts.basePort ?? first.apiPort, ...(net === undefined ? {} : { net }) })
  if (net !== undefined) {
    await addHost(net, o.id, m.orgs.length + 1)
    const mbit = net.linkMbit[o.id]
    if (mbit !== undefined) await shapeUplink(net, o.id, mbit)
  }
  await writeFileAtomic(join(o.dir, DATADIR_FILES.genesis), await readFile(join(resolve(dir), 'genesis.json'), 'utf8'))
  await saveManifest(dir, { ...m, orgs: [...m.orgs, o] })
  return o
}

/**
 * `devnet up`: creates N organizations (keys, configs, one genesis naming
 * them all as authorities) in `<dir>/org1..orgN` unless the devnet exists,
 * starts every daemon on 127.0.0.1 and waits until blocks are final on all.
 */
export async function devnetUp(opts: DevnetUpOpts): Promise<DevnetManifest> {
  const dir = resolve(opts.dir)
  const say = opts.log ?? (() => {})
  let m: DevnetManifest
  if (await exists(join(dir, MANIFEST))) {
    m = await loadManifest(dir)
    if (m.orgs.length !== opts.orgs)
      throw new DevnetError(
        'DEVNET_EXISTS',
        `${dir} holds a devnet of ${m.orgs.length} organizations; use it as is, or \`radchain devnet down --dir ${dir} --purge\` first`,
      )
    if (opts.hosts !== undefined && opts.hosts !== (m.hosts !== undefined))
      throw new DevnetError(
        'DEVNET_EXISTS',
        `${dir} holds a devnet ${m.hosts === undefined ? 'on 127.0.0.1' : 'of hosts'}; use it as is, or \`radchain devnet down --dir ${dir} --purge\` first`,
      )
    say(`restarting the devnet in ${dir}`)
  } else {
    if (opts.orgs < 1 || opts.orgs > 32) throw new DevnetError('DEVNET_BAD_ORG', '--orgs must be between 1 and 32')
    if (opts.hosts === true) await assertHostsSupported()
    await mkdir(dir, { recursive: true })
    const net = opts.hosts === true ? hostsNetFor(dir) : undefined
    say(`creating ${opts.orgs} organizations in ${dir}${net === undefined ? '' : `, each in its own network namespace on ${net.subnet}.0/24`}`)
    const orgs: DevnetOrg[] = []
    for (let i = 1; i <= opts.orgs; i++) orgs.push(await createOrgDir(dir, i, { ...opts, ...(net === undefined ? {} : { net }) }))
    const encKeys = orgs.map((o) => ({ publicKeys: { enc: o.encKey } }))
    const genesis: Genesis = {
      chainId: `${DEVNET_CHAIN_PREFIX}${Date.now().toString(36)}`,
      genesisTime: Date.now(),
      params: withDefaults({
        blockIntervalMs: opts.blockIntervalMs ?? 1000,
        maxBlockBytes: 4 * 1024 * 1024,
        maxTxBytes: 16 * 1024,
        maxBlockTxs: opts.maxBlockTxs ?? 4000,
        maxClockDriftMs: 2000,
        replicationFactor: opts.replicationFactor ?? 3,
        chunkSize: opts.chunkSize ?? 1024 * 1024,
      }),
      orgs: orgs.map((o, i) => ({
        id: o.id,
        name: `Devnet Radiology ${i + 1}`,
        role: 'authority' as const,
        signKey: fromHex(o.signKey),
        encKey: fromHex(encKeys[i]?.publicKeys.enc ?? ''),
        addrs: [`/ip4/${o.host ?? '127.0.0.1'}/tcp/${o.p2pPort}`],
      })),
    }
    const text = JSON.stringify(genesisToJSON(genesis), null, 2) + '\n'
    await writeFileAtomic(join(dir, 'genesis.json'), text)
    for (const o of orgs) await writeFileAtomic(join(o.dir, DATADIR_FILES.genesis), text)
    m = { chainId: genesis.chainId, orgs, blocked: {}, ...(net === undefined ? {} : { hosts: { ...net, linkMbit: {} } }) }
    await saveManifest(dir, m)
  }
  if (m.hosts !== undefined) m = await upHosts(dir, m, opts.linkMbit, say)
  say(`starting ${m.orgs.length} daemons`)
  await Promise.all(m.orgs.map((o) => startOrg(o)))
  const start = Math.max(...(await Promise.all(m.orgs.map(async (o) => (await (await clientOf(o)).status()).height))))
  await waitHeight(m, start + 2, { timeoutMs: 60_000 })
  if (Object.keys(m.blocked).length > 0) await devnetHeal(dir)
  return loadManifest(dir)
}

/**
 * The network of a devnet of hosts, before its daemons start: when none of
 * them runs, whatever an earlier run left (namespaces, links, the bridge, a
 * process still inside) is removed and the network made anew; otherwise
 * what is missing is added. Then the uplinks are shaped: `linkMbit` when
 * given (recorded in the manifest), else as recorded.
 */
async function upHosts(
  dir: string,
  m: DevnetManifest,
  linkMbit: Readonly<Record<string, number>> | undefined,
  say: (line: string) => void,
): Promise<DevnetManifest> {
  const hosts = m.hosts
  if (hosts === undefined) return m
  await assertHostsSupported()
  const running = (await Promise.all(m.orgs.map((o) => pidOf(o)))).some((p) => p !== undefined)
  if (!running) await removeHosts(hosts)
  for (const [i, o] of m.orgs.entries()) await addHost(hosts, o.id, i + 1)
  const rates = linkMbit ?? hosts.linkMbit
  for (const o of m.orgs) await shapeUplink(hosts, o.id, rates[o.id])
  const shaped = Object.entries(rates)
  if (shaped.length > 0) say(`uplinks shaped: ${shaped.map(([id, r]) => `${id} ${r} Mbit/s`).join(', ')}`)
  if (linkMbit === undefined) return m
  const next = { ...m, hosts: { ...hosts, linkMbit: { ...linkMbit } } }
  await saveManifest(dir, next)
  return next
}
/** Status of every organization (null when down). */
export async function devnetStatus(dir: string): Promise<{ org: DevnetOrg; pid: number | undefined; status: NodeStatus | null }[]> {
  const m = await loadManifest(dir)
  return Promise.all(
    m.orgs.map(async (org) => {
      const pid = await pidOf(org)
      const status =
        pid === undefined
          ? null
          : await clientOf(org)
              .then((c) => c.status())
              .catch(() => null)
      return { org, pid, status }
    }),
  )
}

/** `devnet down`: stops every daemon cleanly; with `purge`, deletes the devnet. */
export async function devnetDown(dir: string, purge = false): Promise<number> {
  const m = await loadManifest(dir)
  const stopped = await Promise.all(m.orgs.map((o) => stopOrg(o)))
  // A devnet of hosts: its namespaces, links and bridge go too (the next `up` makes them anew).
  if (m.hosts !== undefined) await removeHosts(m.hosts)
  if (purge) await rm(resolve(dir), { recursive: true, force: true })
  return stopped.filter(Boolean).length
}

async function applyBlocked(dir: string, m: DevnetManifest, blocked: Record<string, string[]>): Promise<void> {
  const keyOf = new Map(m.orgs.map((o) => [o.id, o.signKey]))
  await Promise.all(
    m.orgs.map(async (o) => {
      if ((await pidOf(o)) === undefined) return
      const keys = (blocked[o.id] ?? []).map((id) => keyOf.get(id) as string)
      await (await clientOf(o)).partition(keys)
    }),
  )
  await saveManifest(dir, { ...m, blocked })
}

/** `devnet partition A --from B`: cuts every connection between the two groups, without stopping anyone. */
export async function devnetPartition(dir: string, a: readonly string[], b: readonly string[]): Promise<void> {
  const m = await loadManifest(dir)
  const ga = a.map((x) => orgOf(m, x).id)
  const gb = b.map((x) => orgOf(m, x).id)
  const blocked: Record<string, string[]> = Object.fromEntries(Object.entries(m.blocked).map(([k, v]) => [k, [...v]]))
  const add = (x: string, y: string): void => {
    const l = blocked[x] ?? []
    if (!l.includes(y) && x !== y) l.push(y)
    blocked[x] = l
  }
  for (const x of ga)
    for (const y of gb) {
      add(x, y)
      add(y, x)
    }
  await applyBlocked(dir, m, blocked)
}

/** `devnet heal`: restores every connection. */
export async function devnetHeal(dir: string): Promise<void> {
  const m = await loadManifest(dir)
  await applyBlocked(dir, m, {})
}

/** Re-applies the recorded partition to one (re)started org. */
export async function reapplyPartition(dir: string, o: DevnetOrg): Promise<void> {
  const m = await loadManifest(dir)
  const ids = m.blocked[o.id] ?? []
  if (ids.length === 0) return
  const keyOf = new Map(m.orgs.map((x) => [x.id, x.signKey]))
  await (await clientOf(o)).partition(ids.map((id) => keyOf.get(id) as string))
}
