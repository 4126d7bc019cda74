package main

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// rawConn is one keep-alive HTTP/1.1 connection that sends GET requests
// and reads their answers itself. At 12,000 requests a second on the
// same two cores as the server, net/http's client (a read and a write
// goroutine per connection and channel hand-offs per request) cost about
// as much CPU as the service it measured; this client writes the request
// and parses the status line, the headers it needs and a Content-Length
// body in the worker's own goroutine. It handles what catalogd answers a
// GET with: a fixed-length body, keep-alive; anything else (chunked,
// Connection: close, a transport error) closes the connection and the
// next request dials a new one.
type rawConn struct {
	c    net.Conn
	r    *bufio.Reader
	req  []byte
	host string
}

func (c *rawConn) close() {
	if c != nil && c.c != nil {
		c.c.Close()
	}
}

// get sends GET /v1/products/p-<id> to base over *cp (dialling it when
// nil) and returns the status code, 0 on a transport or protocol error.
func get(ctx context.Context, cp **rawConn, base string, id uint64) int {
	if *cp == nil {
		u, err := url.Parse(base)
		if err != nil || u.Scheme != "http" {
			return 0
		}
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", u.Host)
		if err != nil {
			return 0
		}
		*cp = &rawConn{c: nc, r: bufio.NewReaderSize(nc, 16<<10), host: u.Host}
	}
	c := *cp
	code, keep, err := c.roundTrip(id)
	if err != nil || !keep {
		c.close()
		*cp = nil
	}
	if err != nil {
		return 0
	}
	return code
}

var errProtocol = errors.New("loadgen: unexpected HTTP response")

func (c *rawConn) roundTrip(id uint64) (code int, keep bool, err error) {
	c.req = append(c.req[:0], "GET /v1/products/p-"...)
	c.req = strconv.AppendUint(c.req, id, 10)
	c.req = append(c.req, " HTTP/1.1\r\nHost: "...)
	c.req = append(c.req, c.host...)
	c.req = append(c.req, "\r\nUser-Agent: loadgen\r\n\r\n"...)
	_ = c.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.c.Write(c.req); err != nil {
		return 0, false, err
	}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || string(line[:5]) != "HTTP/" {
		return 0, false, errProtocol
	}
	code, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, errProtocol
	}
	length, keep := -1, true
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		h := strings.TrimRight(string(line), "\r\n")
		if h == "" {
			break
		}
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			return 0, false, errProtocol
		}
		value = strings.TrimSpace(value)
		switch {
		case strings.EqualFold(name, "Content-Length"):
			if length, err = strconv.Atoi(value); err != nil || length < 0 {
				return 0, false, errProtocol
			}
		case strings.EqualFold(name, "Transfer-Encoding"):
			return 0, false, errProtocol // catalogd sends Content-Length; not worth parsing chunks
		case strings.EqualFold(name, "Connection") && strings.EqualFold(value, "close"):
			keep = false
		}
	}
	if length < 0 {
		if code == 204 || code == 304 {
			return code, keep, nil
		}
		return 0, false, errProtocol
	}
	if _, err := c.r.Discard(length); err != nil {
		return 0, false, err
	}
	return code, keep, nil
}
