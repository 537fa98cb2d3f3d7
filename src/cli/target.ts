import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import envPaths from 'env-paths'
import { ApiClient } from '../api/index.js'
import { DATADIR_FILES, loadConfig, type DaemonInfo } from '../node/index.js'
import { RadError } from '../util/index.js'

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
  if (node !== undefined && /^https?:\/\//.test(node)) {
    const token = env[TOKEN_ENV]
    if (token === undefined || token === '') throw new RadError('CLI_NO_TOKEN', `set ${TOKEN_ENV} to the daemon's api.token to use --node with a URL`)
    return new ApiClient({ url: node.replace(/\/+$/, ''), token })
  }
  const dir = dataDirOf(node)
  let url: string
  try {
    const info = JSON.parse(await readFile(join(dir, DATADIR_FILES.daemon), 'utf8')) as DaemonInfo
    url = info.api
  } catch {
    throw new RadError('API_UNREACHABLE', `the radchain daemon for ${dir} is not running; start it with \`radchain daemon --dir ${dir}\``)
  }
  await loadConfig(dir)
  let token: string
  try {
    token = (await readFile(join(dir, DATADIR_FILES.apiToken), 'utf8')).trim()
  } catch {
    throw new RadError('API_UNREACHABLE', `cannot read ${join(dir, DATADIR_FILES.apiToken)}: is the daemon for ${dir} running, and may this user read its data dir?`)
  }
  return new ApiClient({ url, token })
}
