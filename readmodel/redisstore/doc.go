// Package redisstore keeps read models in Redis, applied exactly once: a
// projector's batch of changes and its checkpoint are written by one atomic
// script, so a crash or a lost write rolls both back together.
//
// It is its own module so that importing the core never pulls in the Redis
// client.
package redisstore
