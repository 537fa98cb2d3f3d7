/**
 * The parts of a multipart/related answer, split on the boundary its
 * Content-Type names: a reader independent of src/dicomweb, for the tests.
 */
export function splitMultipart(body: Buffer, contentType: string): Buffer[] {
  const m = /boundary="?([^";]+)"?/.exec(contentType)
  if (m === null) throw new Error(`no boundary in ${contentType}`)
  const delim = Buffer.from(`--${m[1]}`)
  const out: Buffer[] = []
  let pos = body.indexOf(delim)
  while (pos >= 0) {
    const start = pos + delim.length
    if (body.subarray(start, start + 2).toString() === '--') break
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delim]), start)
    const part = body.subarray(start + 2, next)
    out.push(part.subarray(part.indexOf('\r\n\r\n') + 4))
    pos = next + 2
  }
  return out
}
