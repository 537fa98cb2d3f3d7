import { randomBytes } from 'node:crypto'
import { mkdir, unlink, rmdir } from 'node:fs/promises'
import { join } from 'node:path'
import { genesisToJSON, loadGenesis, ORG_ID_RE, withDefaults, type ChainParams, type Genesis } from '../chain/index.js'
import { PASSPHRASE_ENV, generateOrgKeys, generatePassphrase, saveKeystore } from '../crypto/index.js'
import { exists, toHex, writeFileAtomic } from '../util/index.js'
import { ConfigError, DATADIR_FILES, parseConfig, saveConfig, type NodeConfigJSON } from './config.js'

/** Options of `radchain init`. */
export interface InitOpts {
  readonly dir: string
  /** Genesis file to copy into the data dir. */
  readonly genesisPath?: string
  /** Make a one-organization development genesis with this node as its authority. */
  readonly dev?: boolean
  /** Organization id in a dev genesis. */
  readonly orgId?: string
  /** Organization display name in a dev genesis. */
  readonly orgName?: string
  readonly apiPort?: number
  /** DICOMweb listen address, host:port (default 127.0.0.1:7462; any free loopback port for --dev or an API port of 0). */
  readonly dicomwebListen?: string
  /** Peer-to-peer listen multiaddrs (default: any free loopback port for --dev, else the config default). */
  readonly p2pListen?: readonly string[]
  /** Addresses other organizations dial (config p2p.announce; the card's addrs). */
  readonly p2pAnnounce?: readonly string[]
  /** Chain parameter overrides for a dev genesis. */
  readonly params?: Partial<ChainParams>
  /** Passphrase source; defaults to RADCHAIN_PASSPHRASE, else a generated passphrase file. */
  readonly env?: NodeJS.ProcessEnv
  /** Scrypt parameters (tests use cheaper ones). */
  readonly scrypt?: { N: number; r: number; p: number }
  /** Extra config fields. */
  readonly config?: NodeConfigJSON
}

/** What `init` made. */
export interface InitResult {
  readonly dir: string
  readonly signKey: string
  readonly encKey: string
  readonly chainId: string | null
  readonly passphraseFile: string | null
}

/**
 * Creates a node's data dir: organization keys in an encrypted keystore, a
 * passphrase file (mode 0600) unless RADCHAIN_PASSPHRASE is set, a config,
 * and a genesis (copied, or a dev genesis). Refuses to touch a data dir that
 * already holds a node; on failure removes what it wrote.
 */
export async function initDataDir(opts: InitOpts): Promise<InitResult> {
  const env = opts.env ?? process.env
  const dir = opts.dir
  for (const f of [DATADIR_FILES.config, DATADIR_FILES.keystore, DATADIR_FILES.genesis, DATADIR_FILES.db]) {
    if (await exists(join(dir, f))) throw new ConfigError('CONFIG_EXISTS', `${dir} already holds a radchain node (${f} exists); nothing was changed`)
  }
  if (opts.dev === true && opts.genesisPath !== undefined) throw new ConfigError('CONFIG_INVALID', 'use either --dev or --genesis, not both')
  const orgId = opts.orgId ?? 'org1'
  if (!ORG_ID_RE.test(orgId)) throw new ConfigError('CONFIG_INVALID', `organization id ${JSON.stringify(orgId)} must be lower-case letters, digits and dashes`)
  // Read the genesis before writing anything, so a bad one leaves no trace.
  const copied: Genesis | undefined = opts.genesisPath === undefined ? undefined : await loadGenesis(opts.genesisPath)

  const dirExisted = await exists(dir)
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const written: string[] = []
  const write = async (name: string, data: string, mode: number): Promise<void> => {
    await writeFileAtomic(join(dir, name), data, mode)
    written.push(join(dir, name))
  }
  try {
    let passphrase = env[PASSPHRASE_ENV]
    let passphraseFile: string | null = null
    if (passphrase === undefined || passphrase === '') {
      passphrase = generatePassphrase()
      await write(DATADIR_FILES.passphrase, passphrase + '\n', 0o600)
      passphraseFile = join(dir, DATADIR_FILES.passphrase)
    }
    const { keys, secret } = generateOrgKeys()
    await saveKeystore(join(dir, DATADIR_FILES.keystore), secret, passphrase, opts.scrypt)
    written.push(join(dir, DATADIR_FILES.keystore))
    secret.fill(0)
    let genesis = copied
    if (opts.dev === true) {
      genesis = {
        chainId: `radchain-dev-${randomBytes(4).toString('hex')}`,
        genesisTime: Date.now(),
        params: withDefaults(opts.params ?? {}),
        orgs: [{ id: orgId, name: opts.orgName ?? orgId, role: 'authority', signKey: keys.signer.publicKey, encKey: keys.encryption.publicKey, addrs: [] }],
      }
    }
    if (genesis !== undefined) await write(DATADIR_FILES.genesis, JSON.stringify(genesisToJSON(genesis), null, 2) + '\n', 0o644)
    const listen = opts.p2pListen ?? opts.config?.p2p?.listen ?? (opts.dev === true ? ['/ip4/127.0.0.1/tcp/0'] : undefined)
    const config: NodeConfigJSON = {
      ...opts.config,
      api: { ...opts.config?.api, port: opts.apiPort ?? opts.config?.api?.port },
      // A development node, or one whose API takes any free port, takes any free port for DICOMweb too.
      dicomweb: {
        ...opts.config?.dicomweb,
        ...(opts.dicomwebListen !== undefined
          ? { listen: opts.dicomwebListen }
          : opts.config?.dicomweb?.listen === undefined && (opts.dev === true || opts.apiPort === 0)
            ? { listen: '127.0.0.1:0' }
            : {}),
      },
      p2p: {
        ...opts.config?.p2p,
        ...(listen === undefined ? {} : { listen: [...listen] }),
        ...(opts.p2pAnnounce === undefined ? {} : { announce: [...opts.p2pAnnounce] }),
      },
      // The id and name this organization's card proposes (a --dev genesis uses them too).
      org: {
        ...opts.config?.org,
        ...(opts.orgId === undefined && opts.dev !== true ? {} : { id: orgId }),
        ...(opts.orgName === undefined ? {} : { name: opts.orgName }),
      },
    }
    // Checked before it is written: a bad listen or announce address names the field.
    parseConfig(config, 'config')
    await saveConfig(dir, config)
    written.push(join(dir, DATADIR_FILES.config))
    return { dir, signKey: toHex(keys.signer.publicKey), encKey: toHex(keys.encryption.publicKey), chainId: genesis?.chainId ?? null, passphraseFile }
  } catch (err) {
    for (const f of written.reverse()) await unlink(f).catch(() => {})
    if (!dirExisted) await rmdir(dir).catch(() => {})
    throw err
  }
}
