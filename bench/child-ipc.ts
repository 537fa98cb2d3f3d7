import type { ChildProcess } from 'node:child_process'

/** Helpers for the benchmarks' child processes: each answers { cpu: true } with { cpuMs } and stops on { stop: true }. */

/** Milliseconds of CPU (user and system, all threads) in a process.cpuUsage() value. */
export function cpuMsOf(u: NodeJS.CpuUsage): number {
  return (u.user + u.system) / 1000
}

/** CPU milliseconds a child process has used so far: it answers { cpu: true } with { cpuMs }. */
export function childCpuMs(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: unknown): void => {
      const v = (m as { cpuMs?: unknown }).cpuMs
      if (typeof v !== 'number') return
      child.off('message', onMessage)
      resolve(v)
    }
    child.on('message', onMessage)
    child.send({ cpu: true }, (err) => {
      if (err !== null) reject(err)
    })
  })
}

/** The next IPC message from `child` that has `key`; rejects on an { error } message or if the child exits first. */
export function nextMessage<T>(child: ChildProcess, key: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: unknown): void => {
      if (typeof m !== 'object' || m === null) return
      if ('error' in m) {
        done()
        reject(new Error(`benchmark child failed: ${String((m as { error: unknown }).error)}`))
      } else if (key in m) {
        done()
        resolve(m as T)
      }
    }
    const onExit = (code: number | null): void => {
      done()
      reject(new Error(`benchmark child exited early (code ${String(code)})`))
    }
    const done = (): void => {
      child.off('message', onMessage)
      child.off('exit', onExit)
    }
    child.on('message', onMessage)
    child.on('exit', onExit)
  })
}

/** Asks each child still running to stop ({ stop: true }, or SIGTERM when its channel is gone) and waits for it to exit. */
export async function stopChildren(children: (ChildProcess | undefined)[]): Promise<void> {
  for (const c of children) {
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) continue
    const exited = new Promise((r) => c.once('exit', r))
    if (c.connected) c.send({ stop: true })
    else c.kill('SIGTERM')
    await exited
  }
}
