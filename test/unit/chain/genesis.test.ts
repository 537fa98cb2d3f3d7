import t from 'tap'
import { assembleGenesis, genesisToJSON, parseGenesis, parseOrgCard, type OrgCardJSON } from '../../../src/chain/index.js'
import { toHex } from '../../../src/util/index.js'
import { testSigner } from './fixtures.js'

/** A card as `radchain keys show --json` prints it. */
function card(label: string, extra: Partial<OrgCardJSON> = {}): Record<string, unknown> {
  const s = testSigner(`card-${label}`)
  const enc = testSigner(`card-enc-${label}`)
  return {
    id: label,
    name: `Hospital ${label}`,
    role: 'authority',
    signKey: toHex(s.publicKey),
    encKey: toHex(enc.publicKey),
    addrs: [`/dns4/${label}.example/tcp/7461`],
    ...extra,
  }
}

function codeAndMessage(fn: () => unknown): string {
  try {
    fn()
    return 'no error'
  } catch (err) {
    return `${(err as { code?: string }).code ?? '?'}: ${(err as Error).message}`
  }
}

t.test('a card parses to the organization it describes; fields it does not know (a peer id) are ignored', async (t) => {
  const c = { ...card('hosp-a'), peerId: '12D3KooW...' }
  const org = parseOrgCard(c, 'a.json')
  t.equal(org.id, 'hosp-a')
  t.equal(toHex(org.signKey), (c as { signKey?: string }).signKey)
  t.same(org.addrs, ['/dns4/hosp-a.example/tcp/7461'])
  t.equal(parseOrgCard({ ...card('b'), role: undefined }, 'b.json').role, 'authority', 'an authority unless it says otherwise')
})

t.test('a bad card names its file and the field', async (t) => {
  t.match(
    codeAndMessage(() => parseOrgCard({ ...card('a'), signKey: 'zz' }, 'a.json')),
    /^GENESIS_INVALID: a\.json: signKey: expected 32 bytes of hex/,
  )
  t.match(
    codeAndMessage(() => parseOrgCard({ ...card('a'), id: 'Hosp A' }, 'a.json')),
    /a\.json: id: organization id/,
  )
  t.match(
    codeAndMessage(() => parseOrgCard({ ...card('a'), name: '' }, 'a.json')),
    /a\.json: name:/,
  )
  t.match(
    codeAndMessage(() => parseOrgCard({ ...card('a'), role: 'observer' }, 'a.json')),
    /a\.json: role:/,
  )
  t.match(
    codeAndMessage(() => parseOrgCard({ ...card('a'), addrs: 'x' }, 'a.json')),
    /a\.json: addrs:/,
  )
  t.match(
    codeAndMessage(() => parseOrgCard([], 'a.json')),
    /a\.json/,
  )
  t.match(
    codeAndMessage(() => parseOrgCard(null, 'a.json')),
    /a\.json/,
  )
})

t.test('assembleGenesis: the founding organizations in order, default parameters, a genesis that parses back the same', async (t) => {
  const cards = ['hosp-a', 'hosp-b', 'clinic-c'].map((id) => ({ org: parseOrgCard(card(id), `${id}.json`), source: `${id}.json` }))
  const g = assembleGenesis({ chainId: 'radchain-east', genesisTime: Date.parse('2027-01-01T00:00:00Z'), params: { replicationFactor: 2 }, cards })
  t.same(
    g.orgs.map((o) => o.id),
    ['hosp-a', 'hosp-b', 'clinic-c'],
  )
  t.equal(g.params.replicationFactor, 2)
  t.same(genesisToJSON(parseGenesis(genesisToJSON(g))), genesisToJSON(g), 'round trip')
})

t.test('assembleGenesis refuses two cards with the same id, signing key or encryption key, naming both files', async (t) => {
  const a = card('hosp-a')
  const at = (c: Record<string, unknown>, source: string): { org: ReturnType<typeof parseOrgCard>; source: string } => ({
    org: parseOrgCard(c, source),
    source,
  })
  const base = { chainId: 'radchain-east', genesisTime: 0 }
  t.match(
    codeAndMessage(() => assembleGenesis({ ...base, cards: [at(a, 'a.json'), at({ ...card('x'), id: 'hosp-a' }, 'x.json')] })),
    /x\.json and a\.json have the same organization id \(hosp-a\)/,
  )
  t.match(
    codeAndMessage(() => assembleGenesis({ ...base, cards: [at(a, 'a.json'), at({ ...card('y'), signKey: a.signKey }, 'y.json')] })),
    /y\.json and a\.json have the same signing key/,
  )
  t.match(
    codeAndMessage(() => assembleGenesis({ ...base, cards: [at(a, 'a.json'), at({ ...card('z'), encKey: a.encKey }, 'z.json')] })),
    /z\.json and a\.json have the same encryption key/,
  )
  t.match(
    codeAndMessage(() => assembleGenesis({ ...base, chainId: 'no spaces allowed', cards: [at(a, 'a.json')] })),
    /GENESIS_INVALID: .*chainId/,
  )
  t.match(
    codeAndMessage(() => assembleGenesis({ ...base, cards: [at({ ...a, role: 'member' }, 'a.json')] })),
    /at least one organization must be an authority/,
  )
})
