// The Durable Streams reference server for `manage.py streambench` (apps/bench/reference.py).
// The npm package has no command line of its own, so this starts it:
//     node serve.mjs PORT [DATA_DIR]     (no DATA_DIR: in memory; else file-backed, fsync on append)
// Compression is off: streamdash does not compress, and both are measured with the same client.
import { DurableStreamTestServer } from "@durable-streams/server"

const [port, dataDir] = process.argv.slice(2)
const server = new DurableStreamTestServer({
  port: Number(port),
  host: "127.0.0.1",
  dataDir: dataDir || undefined,
  compression: false,
})
await server.start()
console.log(`ready ${server.url}`)
const stop = async () => {
  await server.stop()
  process.exit(0)
}
process.on("SIGTERM", stop)
process.on("SIGINT", stop)
