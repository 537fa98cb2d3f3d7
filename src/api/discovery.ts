import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ApiError } from './errors.js'

// How a client on the same machine finds a running daemon's API: the daemon
// publishes its address in <datadir>/daemon.json and its bearer token in
// <datadir>/api.token (mode 0600) once its API listens, and removes
// daemon.json when it stops.

/** File in the data dir where a running daemon publishes its DaemonInfo. */
export const DAEMON_INFO_FILE = 'daemon.json'
/** File in the data dir holding the API's bearer token (mode 0600). */
export const API_TOKEN_FILE = 'api.token'
/** What a daemon that halted on a safety violation leaves in its data dir: `{ reason, height, round, at }`. */
export const HALTED_FILE = 'halted.json'
/** The API's Unix socket in the data dir (mode 0600): how the CLI reaches the daemon, from any network namespace. */
export const API_SOCKET_FILE = 'api.sock'

/** Runtime facts a running daemon publishes in `<datadir>/daemon.json`. */
export interface DaemonInfo {
  readonly pid: number
  /** Base URL of the local API, e.g. http://127.0.0.1:7600. */
  readonly api: string
  /** Absolute path of the API's Unix socket, when it serves one (clients on the machine prefer it). */
  readonly socket?: string
  readonly chainId: string
  /** Peer-to-peer listen addresses (with the peer id). */
  readonly p2p: readonly string[]
  /** Base URL of the DICOMweb root (e.g. http://127.0.0.1:7462/dicomweb), when the listener is on. */
  readonly dicomweb?: string
  /** The DIMSE listener as `AE@host:port` (e.g. RADCHAIN@127.0.0.1:11112), when it is on. */
  readonly dimse?: string
  readonly startedAt: string
}

/**
 * The API address and token of the daemon running on `dir`. Fails with
 * API_UNREACHABLE, in words a user can act on, when no daemon runs there or
 * its token cannot be read.
 */
export async function readDaemonEndpoint(dir: string): Promise<{ url: string; token: string; socketPath?: string }> {
  let url: string
  let socket: unknown
  try {
    const info = JSON.parse(await readFile(join(dir, DAEMON_INFO_FILE), 'utf8')) as DaemonInfo
    url = info.api
    socket = info.socket
  } catch {
    const halt = await readFile(join(dir, HALTED_FILE), 'utf8').then(
      (t) => JSON.parse(t) as { reason?: unknown; height?: unknown; at?: unknown },
      () => undefined,
    )
    if (halt !== undefined)
      throw new ApiError(
        'NODE_HALTED',
        `the radchain daemon for ${dir} halted at height ${String(halt.height)} on ${String(halt.at)}: ${String(halt.reason)}; find the cause in the daemon's log, then delete ${join(dir, HALTED_FILE)} to start it again`,
        0,
      )
    throw new ApiError('API_UNREACHABLE', `the radchain daemon for ${dir} is not running; start it with \`radchain daemon --dir ${dir}\``, 0)
  }
  if (typeof url !== 'string') throw new ApiError('API_UNREACHABLE', `${join(dir, DAEMON_INFO_FILE)} names no API address: is it a radchain data dir?`, 0)
  let token: string
  try {
    token = (await readFile(join(dir, API_TOKEN_FILE), 'utf8')).trim()
  } catch {
    throw new ApiError('API_UNREACHABLE', `cannot read ${join(dir, API_TOKEN_FILE)}: is the daemon for ${dir} running, and may this user read its data dir?`, 0)
  }
  return typeof socket === 'string' && socket !== '' ? { url, token, socketPath: socket } : { url, token }
}
