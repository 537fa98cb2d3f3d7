export * from './messages.js'
export * from './download.js'
