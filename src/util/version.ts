import { readFileSync } from 'node:fs'

function readVersion(): string {
  // src/util and dist/src/util both sit below the package root.
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string }
      if (pkg.name === 'radchain' && typeof pkg.version === 'string') return pkg.version
    } catch {
      // try the next candidate
    }
  }
  return '0.0.0'
}

/** radchain's version, from package.json. */
export const VERSION: string = readVersion()
