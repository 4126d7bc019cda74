module github.com/cqrskit/cqrs/examples/catalogd

go 1.26

require github.com/cqrskit/cqrs v0.0.0
