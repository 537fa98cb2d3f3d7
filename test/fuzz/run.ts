// `npm run fuzz`: the fuzz tests (test/fuzz/*.test.ts) with many runs per
// property and a fresh random seed, which it prints first so that a failure
// can be replayed:
//
//   RADCHAIN_FUZZ_SEED=<seed> RADCHAIN_FUZZ_RUNS=<runs> npm run fuzz [-- test/fuzz/<file>.test.ts]
//
// RADCHAIN_FUZZ_RUNS defaults to 10000 runs per property (see params() in fuzz.ts).
import { spawn } from 'node:child_process'
import { randomInt } from 'node:crypto'

const seed = process.env.RADCHAIN_FUZZ_SEED ?? String(randomInt(0, 2 ** 31))
const runs = process.env.RADCHAIN_FUZZ_RUNS ?? '10000'
const files = process.argv.slice(2)
console.log(`fuzz: seed ${seed}, ${runs} runs per property`)
console.log(`replay: RADCHAIN_FUZZ_SEED=${seed} RADCHAIN_FUZZ_RUNS=${runs} npm run fuzz${files.length > 0 ? ` -- ${files.join(' ')}` : ''}`)
const started = Date.now()
const tap = spawn('npx', ['tap', '--timeout=86400', ...(files.length > 0 ? files : ['test/fuzz/*.test.ts'])], {
  stdio: 'inherit',
  env: { ...process.env, RADCHAIN_FUZZ_SEED: seed, RADCHAIN_FUZZ_RUNS: runs },
})
tap.on('exit', (code, signal) => {
  console.log(`fuzz: seed ${seed}, ${runs} runs per property: ${code === 0 ? 'passed' : 'FAILED'} in ${Math.round((Date.now() - started) / 1000)} s`)
  process.exit(code ?? (signal === null ? 1 : 128))
})
