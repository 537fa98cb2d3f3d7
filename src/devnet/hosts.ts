import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { resolve } from 'node:path'
import { DevnetError } from './errors.js'

// A devnet of hosts on one machine: each organization in its own Linux
// network namespace, with one address on a bridge that only the devnet's
// namespaces are attached to. The bridge has no address of its own, so the
// machine's other processes reach no organization over the network; the
// CLI reaches each daemon through the Unix socket in its data dir. An
// organization's uplink (what leaves its namespace) may be shaped with the
// kernel's token-bucket filter. Every name derives from the devnet's folder,
// so a devnet can always find, and remove, what an earlier run left behind.

/** The network of a devnet of hosts. */
export interface HostsNet {
  /** Six hex digits from the devnet's folder: every name below includes it. */
  readonly tag: string
  /** The bridge the namespaces' links are attached to. */
  readonly bridge: string
  /** The first three bytes of the devnet's /24, e.g. "10.213.7". */
  readonly subnet: string
}

/** The prefix of the /16s the devnets pick their /24 from: 10.200.0.0 to 10.249.255.255, private (RFC 1918). */
const FIRST_SECOND_BYTE = 200
const SECOND_BYTES = 50

/** The network a devnet in `dir` uses. */
export function hostsNetFor(dir: string): HostsNet {
  const h = createHash('sha256').update(resolve(dir)).digest()
  const tag = h.subarray(0, 3).toString('hex')
  return { tag, bridge: `rcb-${tag}`, subnet: `10.${FIRST_SECOND_BYTE + ((h[3] as number) % SECOND_BYTES)}.${h[4] as number}` }
}

/** The network namespace of organization `orgId`. */
export function namespaceOf(net: HostsNet, orgId: string): string {
  return `rc-${net.tag}-${orgId}`
}

/** The address of organization number `index` (1 for org1): .2 onwards; no address of the /24 is the machine's. */
export function hostAddressOf(net: HostsNet, index: number): string {
  if (!Number.isInteger(index) || index < 1 || index > 250)
    throw new DevnetError('DEVNET_BAD_ORG', `a devnet of hosts has at most 250 organizations, not ${index}`)
  return `${net.subnet}.${index + 1}`
}

/** The host side of organization number `index`'s link (at most 15 characters, as Linux allows). */
function hostLinkOf(net: HostsNet, index: number): string {
  return `rcv-${net.tag}-${index}`
}

/** Runs `cmd args`; its stdout, or DEVNET_HOSTS naming the command and what it printed. */
function run(cmd: string, args: readonly string[]): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err === null) {
        resolvePromise(stdout)
        return
      }
      const detail = (stderr.trim() || err.message).split('\n').slice(-2).join(' | ')
      reject(new DevnetError('DEVNET_HOSTS', `\`${cmd} ${args.join(' ')}\` failed: ${detail}`))
    })
  })
}

/**
 * Checks that this machine can make a devnet of hosts: root, and iproute2's
 * `ip` and `tc`. DEVNET_HOSTS says what is missing.
 */
export async function assertHostsSupported(): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new DevnetError('DEVNET_HOSTS', 'a devnet of hosts (network namespaces, a bridge, shaped links) needs root; run it as root, or without --hosts')
  }
  for (const cmd of ['ip', 'tc']) {
    try {
      await run(cmd, ['-V'])
    } catch {
      throw new DevnetError('DEVNET_HOSTS', `a devnet of hosts needs \`${cmd}\` (Debian package iproute2): install it, or run without --hosts`)
    }
  }
}

/** Namespaces of this devnet that exist, by name. */
async function namespaces(net: HostsNet): Promise<string[]> {
  const out = await run('ip', ['netns', 'list'])
  const prefix = `rc-${net.tag}-`
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.startsWith(prefix))
}

async function linkExists(name: string): Promise<boolean> {
  try {
    await run('ip', ['link', 'show', 'dev', name])
    return true
  } catch {
    return false
  }
}

/**
 * Removes everything of the devnet's network: processes still inside its
 * namespaces (a namespace lives as long as one does) are killed, then the
 * namespaces (which takes their links) and the bridge. Nothing there is fine.
 */
export async function removeHosts(net: HostsNet): Promise<void> {
  for (const ns of await namespaces(net)) {
    const pids = (await run('ip', ['netns', 'pids', ns]).catch(() => ''))
      .split('\n')
      .map((l) => Number(l.trim()))
      .filter((p) => Number.isInteger(p) && p > 0)
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
    await run('ip', ['netns', 'delete', ns])
  }
  if (await linkExists(net.bridge)) await run('ip', ['link', 'delete', net.bridge])
  // The kernel takes a namespace's links away after `ip netns delete` returns: wait, so that a following `up` finds none.
  const deadline = Date.now() + 10_000
  while ((await hostLinks(net)).length > 0) {
    if (Date.now() > deadline)
      throw new DevnetError('DEVNET_HOSTS', `links ${(await hostLinks(net)).join(', ')} are still there 10 s after their namespaces were deleted`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** The host side links of the devnet's organizations that exist. */
async function hostLinks(net: HostsNet): Promise<string[]> {
  const out = await run('ip', ['-o', 'link', 'show'])
  const prefix = `rcv-${net.tag}-`
  return [...out.matchAll(/^\d+:\s+([^:@\s]+)/gm)].map((m) => m[1] as string).filter((n) => n.startsWith(prefix))
}

/** Creates the bridge, unless it exists. */
async function ensureBridge(net: HostsNet): Promise<void> {
  if (await linkExists(net.bridge)) return
  await run('ip', ['link', 'add', net.bridge, 'type', 'bridge'])
  await run('ip', ['link', 'set', net.bridge, 'up'])
}

/**
 * Creates organization `orgId`'s namespace with its link to the bridge and
 * its address (the /24 of the devnet), unless it exists.
 */
export async function addHost(net: HostsNet, orgId: string, index: number): Promise<void> {
  await ensureBridge(net)
  const ns = namespaceOf(net, orgId)
  if ((await namespaces(net)).includes(ns)) return
  const link = hostLinkOf(net, index)
  await run('ip', ['netns', 'add', ns])
  if (await linkExists(link)) await run('ip', ['link', 'delete', link]).catch(() => '')
  await run('ip', ['link', 'add', link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
  await run('ip', ['link', 'set', link, 'master', net.bridge, 'up'])
  await run('ip', ['-n', ns, 'addr', 'add', `${hostAddressOf(net, index)}/24`, 'dev', 'eth0'])
  await run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up'])
  await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
}

/**
 * Shapes what leaves organization `orgId`'s namespace to `mbit` Mbit/s with
 * a token-bucket filter (`tc qdisc ... tbf`) on its link, or removes the
 * shaping when `mbit` is undefined. A burst of 10 ms of the rate (at least
 * 64 KiB) and a queue of 50 ms.
 */
export async function shapeUplink(net: HostsNet, orgId: string, mbit: number | undefined): Promise<void> {
  const ns = namespaceOf(net, orgId)
  if (mbit === undefined) {
    await run('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'delete', 'dev', 'eth0', 'root']).catch(() => '')
    return
  }
  if (!Number.isFinite(mbit) || mbit <= 0) throw new DevnetError('DEVNET_BAD_ORG', `a link rate must be a positive number of Mbit/s, not ${mbit}`)
  const burst = Math.max(64 * 1024, Math.ceil((mbit * 1e6) / 8 / 100))
  await run('ip', [
    'netns',
    'exec',
    ns,
    'tc',
    'qdisc',
    'replace',
    'dev',
    'eth0',
    'root',
    'tbf',
    'rate',
    `${mbit}mbit`,
    'burst',
    String(burst),
    'latency',
    '50ms',
  ])
}

/** The uplink shaping of organization `orgId` as `tc` shows it, e.g. "tbf 8001: root ... rate 200Mbit ...", or "" when none. */
export async function uplinkQdisc(net: HostsNet, orgId: string): Promise<string> {
  const out = await run('ip', ['netns', 'exec', namespaceOf(net, orgId), 'tc', 'qdisc', 'show', 'dev', 'eth0'])
  return out.includes('tbf') ? out.trim() : ''
}

/**
 * Parses `--link-mbit`: a rate for every organization (`200`), rates per
 * organization (`org1=200,org2=1000`), or both (`1000,org1=200`). Ids are
 * checked against `orgIds`.
 */
export function parseLinkMbit(spec: string, orgIds: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {}
  const rate = (s: string, what: string): number => {
    const n = Number(s)
    if (s.trim() === '' || !Number.isFinite(n) || n <= 0 || n > 100_000)
      throw new DevnetError('DEVNET_BAD_ORG', `--link-mbit: ${what} must be a rate in Mbit/s between 0 and 100000, not ${JSON.stringify(s)}`)
    return n
  }
  const parts = spec.split(',').map((p) => p.trim())
  for (const p of parts) {
    if (!p.includes('=')) {
      const n = rate(p, 'the rate for every organization')
      for (const id of orgIds) out[id] ??= n
    }
  }
  for (const p of parts) {
    const eq = p.indexOf('=')
    if (eq < 0) continue
    const id = p.slice(0, eq).trim()
    const want = /^\d+$/.test(id) ? `org${id}` : id
    if (!orgIds.includes(want))
      throw new DevnetError('DEVNET_BAD_ORG', `--link-mbit: no organization ${JSON.stringify(id)} in this devnet (have ${orgIds.join(', ')})`)
    out[want] = rate(p.slice(eq + 1), want)
  }
  return out
}
