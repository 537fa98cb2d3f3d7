import '../../../src/util/polyfill.js'
import t from 'tap'
import { protocolId, peerIdFromOrgKey, orgKeyOf, privateKeyFromSeed } from '../../../src/p2p/index.js'
import { Ed25519Signer } from '../../../src/crypto/index.js'
import { equalBytes, fromHex } from '../../../src/util/index.js'

t.test('protocol ids carry the network id and are validated', async (t) => {
  t.equal(protocolId('chain-1', 'votes'), '/radchain/chain-1/votes/1')
  t.throws(() => protocolId('a/b', 'votes'), { name: 'P2PError', code: 'P2P_INVALID_ARGUMENT' })
  t.throws(() => protocolId('net', ''), { code: 'P2P_INVALID_ARGUMENT' })
  t.throws(() => protocolId('net', 'x'.repeat(65)), { code: 'P2P_INVALID_ARGUMENT' })
})

t.test('the libp2p identity is the organization signing key', async (t) => {
  // RFC 8032 section 7.1, test 1.
  const seed = fromHex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60')
  const pub = fromHex('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a')
  t.ok(equalBytes(new Ed25519Signer(seed).publicKey, pub))
  const pk = await privateKeyFromSeed(seed)
  t.ok(equalBytes(pk.publicKey.raw, pub), 'libp2p key pair from the seed has the same public key')
  const peerId = peerIdFromOrgKey(pub)
  t.equal(peerId.type, 'Ed25519')
  t.ok(equalBytes(orgKeyOf(peerId) as Uint8Array, pub), 'round trip')
  t.match(peerId.toString(), /^12D3KooW/)
  t.throws(() => peerIdFromOrgKey(new Uint8Array(31)), { code: 'P2P_INVALID_ARGUMENT' })
  await t.rejects(privateKeyFromSeed(new Uint8Array(16)), TypeError)
})
