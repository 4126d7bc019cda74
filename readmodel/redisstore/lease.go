package redisstore

// leaseKey is the hash holding the lease on name under prefix.
func leaseKey(prefix, name string) string { return prefix + ":lease:" + name }
