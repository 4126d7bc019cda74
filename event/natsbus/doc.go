// Package natsbus fans the committed event log out to read replicas through
// NATS JetStream: a Relay publishes a store.Log to a stream, and a Follower
// is a store.Log over that stream, so a projection.Runner on a read node
// runs unchanged.
//
// It is its own module so that importing the core never pulls in the NATS
// client.
package natsbus
