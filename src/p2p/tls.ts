import { Duplex } from 'node:stream'
import { TLSSocket, connect, type ConnectionOptions, type TLSSocketOptions } from 'node:tls'
import { InvalidCryptoExchangeError, serviceCapabilities } from '@libp2p/interface'
import type { ConnectionEncrypter, MessageStream, SecureConnectionOptions, SecuredConnection, StreamMuxerFactory } from '@libp2p/interface'
import type { TLSComponents } from '@libp2p/tls'
import { generateCertificate, toMessageStream, verifyPeerCertificate } from '@libp2p/tls/utils'

/** The libp2p TLS protocol id (libp2p/specs tls/tls.md), the same as `@libp2p/tls`'s: the two interoperate. */
export const TLS_PROTOCOL = '/tls/1.0.0'

/**
 * The libp2p TLS 1.3 secure channel (libp2p/specs tls/tls.md): certificates,
 * their verification, ALPN muxer negotiation and the encrypted stream are
 * `@libp2p/tls`'s (3.1.10); what differs is the adapter between the
 * transport stream and Node's TLSSocket (`transportDuplex`).
 *
 * `@libp2p/tls`'s adapter (`toNodeDuplex`) stops reading from the transport
 * (`socket.pause()`) while a write waits for the transport to drain. With
 * heavy traffic both ways, each side then waits for the other to read: the
 * adversarial transaction flood became final in 43.6 s over it, 17.5 s over
 * Noise and 17.3 s with that one call removed (docs/PERFORMANCE.md). Here a
 * write waiting for drain delays only its own callback (which is the
 * backpressure a Writable needs); reading goes on.
 */
export function tlsEncrypter(): (components: TLSComponents) => ConnectionEncrypter {
  return (components) => new TlsEncrypter(components)
}

class TlsEncrypter implements ConnectionEncrypter {
  readonly protocol = TLS_PROTOCOL
  readonly #components: TLSComponents
  readonly [Symbol.toStringTag] = 'radchain/tls'
  readonly [serviceCapabilities]: string[] = ['@libp2p/connection-encryption']

  constructor(components: TLSComponents) {
    this.#components = components
  }

  secureInbound(connection: MessageStream, options?: SecureConnectionOptions): Promise<SecuredConnection> {
    return this.#encrypt(connection, true, options)
  }

  secureOutbound(connection: MessageStream, options?: SecureConnectionOptions): Promise<SecuredConnection> {
    return this.#encrypt(connection, false, options)
  }

  async #encrypt(connection: MessageStream, isServer: boolean, options?: SecureConnectionOptions): Promise<SecuredConnection> {
    const upgrader = this.#components.upgrader
    const muxers = options?.skipStreamMuxerNegotiation === true ? [] : [...upgrader.getStreamMuxers().keys()]
    let streamMuxer: StreamMuxerFactory | undefined
    const opts: TLSSocketOptions & ConnectionOptions = {
      ...(await generateCertificate(this.#components.privateKey, options)),
      isServer,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      // Self-signed certificates carrying the libp2p key extension: verified below, not by a CA.
      rejectUnauthorized: false,
      // Early muxer negotiation through ALPN; 'libp2p' when the other side has none.
      ALPNProtocols: [...muxers, 'libp2p'],
      ALPNCallback: ({ protocols }) => {
        let chosen: string | undefined
        for (const p of protocols) {
          if (p === 'libp2p') chosen = 'libp2p'
          streamMuxer = upgrader.getStreamMuxers().get(p)
          if (streamMuxer !== undefined) return p
        }
        return chosen
      },
    }
    const duplex = transportDuplex(connection)
    const socket = isServer ? new TLSSocket(duplex, { ...opts, requestCert: true }) : connect({ socket: duplex, ...opts })
    duplex.on('error', (err) => socket.emit('error', err))
    const onAbort = (): void => {
      socket.emit('error', new Error('TLS handshake timed out'))
    }
    options?.signal?.addEventListener('abort', onAbort)
    try {
      return await new Promise<SecuredConnection>((resolve, reject) => {
        socket.on('error', (err: Error) => {
          socket.destroy()
          connection.abort(err)
          reject(err)
        })
        socket.once('secure', () => {
          const remote = socket.getPeerCertificate()
          verifyPeerCertificate(new Uint8Array(remote.raw), options?.remotePeer)
            .then((remotePeer) => {
              // The client learns the muxer the server chose from ALPN ('libp2p': none, negotiate it after).
              if (!isServer && typeof socket.alpnProtocol === 'string' && socket.alpnProtocol !== 'libp2p' && options?.skipStreamMuxerNegotiation !== true) {
                streamMuxer = upgrader.getStreamMuxers().get(socket.alpnProtocol)
                if (streamMuxer === undefined) {
                  const err = new InvalidCryptoExchangeError(`selected muxer ${socket.alpnProtocol} does not exist`)
                  connection.abort(err)
                  reject(err)
                  return
                }
              }
              resolve({ remotePeer, connection: toMessageStream(connection, socket), ...(streamMuxer === undefined ? {} : { streamMuxer }) })
            })
            .catch((err: unknown) => socket.emit('error', err))
        })
      })
    } finally {
      options?.signal?.removeEventListener('abort', onAbort)
    }
  }
}

/**
 * The transport stream as a Node Duplex for TLSSocket: ciphertext written
 * goes out by `send` (a write waits for 'drain' when the transport's buffer
 * is full, and only that write's callback waits); ciphertext received is
 * pushed, and the transport is paused only when the Duplex's read buffer is
 * full, resumed when TLSSocket reads again.
 */
export function transportDuplex(stream: MessageStream): Duplex {
  const waitDrain = (callback: (err?: Error | null) => void): void => {
    const onDrain = (): void => {
      stream.removeEventListener('close', onClose)
      callback()
    }
    const onClose = (): void => {
      stream.removeEventListener('drain', onDrain)
      callback(new Error('the transport closed while a write waited for it to drain'))
    }
    stream.addEventListener('drain', onDrain, { once: true })
    stream.addEventListener('close', onClose, { once: true })
  }
  const send = (chunks: readonly Uint8Array[], callback: (err?: Error | null) => void): void => {
    try {
      let more = true
      for (const c of chunks) more = stream.send(c)
      if (more) callback()
      else waitDrain(callback)
    } catch (err) {
      callback(err as Error)
    }
  }
  // Nothing is read from the transport until TLSSocket asks.
  stream.pause()
  const socket = new Duplex({
    write(chunk: Uint8Array, _encoding, callback) {
      send([chunk], callback)
    },
    writev(chunks, callback) {
      send(
        chunks.map(({ chunk }) => chunk as Uint8Array),
        callback,
      )
    },
    read() {
      stream.resume()
    },
    final(callback) {
      stream.close().then(
        () => callback(),
        (err: unknown) => callback(err as Error),
      )
    },
  })
  stream.addEventListener('message', (evt) => {
    const data = evt.data
    let more = true
    if (data instanceof Uint8Array) more = socket.push(data)
    else for (const c of data) more = socket.push(c)
    if (!more) stream.pause()
  })
  stream.addEventListener('close', (evt) => {
    socket.destroy(evt.error)
  })
  return socket
}
