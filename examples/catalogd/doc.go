// Command catalogd serves the product catalog over HTTP, from one process
// on the in-memory store to a writer, readers and projectors on PostgreSQL,
// NATS JetStream and Redis, chosen by flags.
package main
func main() {}
