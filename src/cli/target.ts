import { resolve } from 'node:path'
import envPaths from 'env-paths'
import type { ApiClient } from '../api/index.js'
import { CliError } from './errors.js'

/** Environment variable that overrides the default data dir. */
export const HOME_ENV = 'RADCHAIN_HOME'
/** Environment variable holding the API token when --node is a URL. */
export const TOKEN_ENV = 'RADCHAIN_API_TOKEN'

/** The default data dir: $RADCHAIN_HOME, else the platform's data folder for radchain. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  const home = env[HOME_ENV]
  if (home !== undefined && home !== '') return resolve(home)
  return envPaths('radchain', { suffix: '' }).data
}

/** A data dir from --dir/--node, or the default. */
export function dataDirOf(opt: string | undefined): string {
  return opt === undefined ? defaultDataDir() : resolve(opt)
}

/**
 * An API client for `--node <datadir|url>`: for a data dir, the URL comes
 * from the running daemon's daemon.json (or the configured port) and the
 * token from api.token; for a URL, the token comes from RADCHAIN_API_TOKEN.
 */
export async function clientFor(node: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<ApiClient> {
  // The API client loads on demand: --version and --help need none of it.
  // The client's own modules, not the api barrel (which brings the server, its routes and their schemas).
  const { ApiClient, readDaemonEndpoint } = await import('../api/client.js')
  if (node !== undefined && /^https?:\/\//.test(node)) {
    const token = env[TOKEN_ENV]
    if (token === undefined || token === '') throw new CliError('CLI_NO_TOKEN', `set ${TOKEN_ENV} to the daemon's api.token to use --node with a URL`)
    return new ApiClient({ url: node.replace(/\/+$/, ''), token })
  }
  return new ApiClient(await readDaemonEndpoint(dataDirOf(node)))
}
