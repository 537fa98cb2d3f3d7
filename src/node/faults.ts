import { join } from 'node:path'
import { z } from 'zod'
import { ConfigError, checkJson, readJsonFile } from './config.js'

// Fault injection, for the devnet's tests and benchmarks only. A production
// daemon (`radchain daemon`) has none of it: its config refuses a `testing`
// section, and it answers 404 to the devnet's partition route. Only the
// devnet's own daemon entry (src/devnet/daemon-main.ts) reads these switches,
// from `<datadir>/faults.json`, and hands them to runDaemon.

/** File in a devnet organization's data dir holding its faults. */
export const FAULTS_FILE = 'faults.json'

const FaultsSchema = z.strictObject({
  /** Consensus: sign two different prevotes (an equivocating authority). */
  equivocate: z.boolean().default(false),
  /** Swarm: wait this long before answering each chunk request (a slow peer). */
  serveDelayMs: z.number().int().min(0).max(60_000).default(0),
  /** Swarm: answer chunk requests with random bytes (a lying peer). */
  serveGarbage: z.boolean().default(false),
  /** Swarm: do not pull assigned studies (benchmarks measure a reader's fetch alone). */
  noPull: z.boolean().default(false),
  /** Consensus: a broken invariant on reaching this height (0: never); the daemon halts and exits as on a real one. */
  haltAtHeight: z.number().int().min(0).default(0),
})

/** The faults a devnet daemon injects; the partition route comes with any of them. */
export interface Faults {
  readonly equivocate: boolean
  readonly serveDelayMs: number
  readonly serveGarbage: boolean
  readonly noPull: boolean
  readonly haltAtHeight: number
}

/** What a test may write into faults.json (every field optional). */
export type FaultsJSON = z.input<typeof FaultsSchema>

/** No fault injected (a devnet daemon that still answers the partition route). */
export const NO_FAULTS: Faults = FaultsSchema.parse({})

/** Checks faults JSON; CONFIG_INVALID names the first bad field. */
export function parseFaults(json: unknown, source = FAULTS_FILE): Faults {
  return checkJson(FaultsSchema, json, source)
}

/** Reads `<dataDir>/faults.json`; no file means no fault. */
export async function loadFaults(dataDir: string): Promise<Faults> {
  const path = join(dataDir, FAULTS_FILE)
  let json: unknown
  try {
    json = await readJsonFile(path)
  } catch (err) {
    if (err instanceof ConfigError) throw err
    if ((err as { code?: unknown }).code === 'ENOENT') return NO_FAULTS
    throw new ConfigError('CONFIG_INVALID', `cannot read ${path}`, { cause: err })
  }
  return parseFaults(json, path)
}
