// Loaded first in every test process (.taprc node-arg). tap's process-info
// hook sees every process a test spawns: it adds itself to their
// NODE_OPTIONS (through process-on-spawn, which wraps ChildProcess#spawn),
// so every daemon and CLI run of the suite loaded it, a module-loading hook
// that cost each child about a second of CPU at start. The suite spawns
// hundreds of them and is bound by CPU; coverage is off (.taprc), so
// nothing reads what the hook records. Children start without it.
const HOOK = '@tapjs/processinfo'
const state = (globalThis as Record<symbol, unknown>)[Symbol.for('process-on-spawn@*:singletonId')] as { listeners?: unknown[] } | undefined
if (state?.listeners !== undefined) state.listeners = []
const opts = process.env['NODE_OPTIONS']
if (opts?.includes(HOOK) === true) {
  const kept = opts
    .split(/\s+/)
    .filter((o) => o !== '' && !o.includes(HOOK))
    .join(' ')
  if (kept === '') delete process.env['NODE_OPTIONS']
  else process.env['NODE_OPTIONS'] = kept
}
for (const k of Object.keys(process.env)) if (k.startsWith('_TAPJS_PROCESSINFO_')) delete process.env[k]
