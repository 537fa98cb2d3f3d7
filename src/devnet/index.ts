/** A local multi-organization network on one machine: daemon processes, genesis, partitions, the demo. */
export * from './devnet.js'
export * from './errors.js'
export * from './process.js'
export { addHost, hostsNetFor, namespaceOf, hostAddressOf, parseLinkMbit, shapeUplink, uplinkQdisc, removeHosts, type HostsNet } from './hosts.js'
export { runDemo, type DemoOpts } from './demo.js'
