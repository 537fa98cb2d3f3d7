export * from './engine.js'
export * from './bft.js'
export * from './messages.js'
export * from './wal.js'
