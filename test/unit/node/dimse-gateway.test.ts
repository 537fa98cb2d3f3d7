import t from 'tap'
import { DimseGateway, MAX_FIND_MATCHES, type DimseIngest } from '../../../src/node/dimse.js'
import type { IndexedInstance } from '../../../src/dicomweb/index.js'
import { createLogger } from '../../../src/util/index.js'

const el = (vr: string, v: string): { vr: string; Value: string[] } => ({ vr, Value: [v] })
const CT = '1.2.840.10008.5.1.4.1.1.2'

function gateway(n: number): DimseGateway {
  const instances: IndexedInstance[] = Array.from({ length: n }, (_, i) => ({
    study: { '0020000D': el('UI', '1.2.3') },
    series: { '0020000E': el('UI', '1.2.3.4'), '00080060': el('CS', 'CT') },
    instance: { '00080018': el('UI', `1.2.3.4.${i}`), '00080016': el('UI', CT) },
  }))
  const ingest = {
    instances: async () => instances,
    retrieve: async () => undefined,
    openStore: () => {
      throw new Error('not used')
    },
  } as unknown as DimseIngest
  return new DimseGateway({ dataDir: '/nonexistent', admission: { peers: [], acceptUnknown: true } }, { ingest, logger: createLogger({ level: 'silent' }) })
}

const peer = { callingAe: 'PACS', address: '127.0.0.1' }
const images = {
  level: 'instance' as const,
  keys: [
    { tag: '0020000D', vr: 'UI', value: '1.2.3' },
    { tag: '00080018', vr: 'UI', value: '' },
  ],
}

t.test('C-FIND and C-MOVE never answer part of the matches as all of them', async (t) => {
  const at = await gateway(MAX_FIND_MATCHES).find(peer, images)
  t.ok(at.ok && at.matches.length === MAX_FIND_MATCHES, `${MAX_FIND_MATCHES} matches are answered`)
  const over = gateway(MAX_FIND_MATCHES + 5)
  const found = await over.find(peer, images)
  t.match(found, { ok: false, status: 0xa700 }, 'one more: C-FIND refused, Out of Resources')
  t.match(found.ok ? '' : found.comment, /narrow the query/)
  const moved = await over.retrieve(peer, images, new AbortController().signal)
  t.match(moved, { ok: false, status: 0xa701 }, 'C-MOVE refused: Unable to calculate number of matches')
})
