package catalogredis

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/readmodel"
	"github.com/cqrskit/cqrs/readmodel/redisstore"
)

// The product and seller views are stored in a compact binary form
// instead of JSON: decoding the JSON of a product view was most of a
// read's CPU and allocations (reflection, a map of fields, a copy of every
// string). The binary form is read front to back with no reflection, and
// its strings are substrings of the stored value, not copies.
//
// A stored value starts with a format byte. Format 1 is the layout below;
// a future layout gets a new byte, and a reader that does not know it
// returns an *UnknownFormatError rather than misreading it. Values that
// start with '{' are the JSON this package stored before format 1: they
// are still decoded (as JSON), so views written by an older version stay
// readable until the projector next rewrites them.
//
// Format 1 of a ProductView, field by field (uvarint and varint are
// encoding/binary's; signed integers are varints; a string is a uvarint
// length and its bytes; a float64 is its IEEE 754 bits, 8 bytes little
// endian; a slice is a uvarint 0 for nil or 1+len, then its elements; a
// time is a zone byte (0 UTC, 2 local, 1 another zone, then its varint
// offset in seconds east of UTC), the varint Unix seconds and the uvarint
// nanoseconds):
//
//	ID Title Description PriceCents Stock flags(1 InStock, 2 PriceDropped)
//	Ratings(uvarint count, float64 sum)
//	Recent(uvarint capacity, uvarint n, n × ReviewSummary newest first:
//	       ReviewID Author Rating Text At)
//	SellerID SellerName SellerRating(float64)
//	Shipping(slice of Method PriceCents Days)
//	History(slice of At Cents)
//	PreviousPriceCents Version(uvarint) UpdatedAt
//
// and of a SellerView: ID Name Rating(float64). Nothing may follow the
// last field.
const formatV1 = 1

// UnknownFormatError reports a stored view whose format byte this version
// does not know: written by a newer version, or not a view at all.
type UnknownFormatError struct {
	Format byte // the value's first byte
}

// Error implements error.
func (e *UnknownFormatError) Error() string {
	return fmt.Sprintf("catalogredis: unknown view format %#02x", e.Format)
}

// CorruptError reports a stored view in a known format that does not
// decode: truncated, with a length or value out of range, or with bytes
// after its last field.
type CorruptError struct {
	Format byte   // the value's format byte (0 for an empty value)
	Offset int    // where decoding stopped, in bytes from the start
	Reason string // what was wrong there
}

// Error implements error.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("catalogredis: corrupt view (format %d) at byte %d: %s", e.Format, e.Offset, e.Reason)
}

// ProductCodec is the redisstore.Codec of product views. Its zero value is
// ready to use.
type ProductCodec struct{}

// SellerCodec is the redisstore.Codec of seller views. Its zero value is
// ready to use.
type SellerCodec struct{}

var (
	_ redisstore.Codec[catalog.ProductView] = ProductCodec{}
	_ redisstore.Codec[catalog.SellerView]  = SellerCodec{}
)

// Append implements redisstore.Codec. It fails only for a time whose zone
// offset is a day or more, which no time zone has.
func (ProductCodec) Append(b []byte, p catalog.ProductView) ([]byte, error) {
	b = append(b, formatV1)
	b = appendString(b, p.ID)
	b = appendString(b, p.Title)
	b = appendString(b, p.Description)
	b = appendVarint(b, p.PriceCents)
	b = appendVarint(b, int64(p.Stock))
	var flags byte
	if p.InStock {
		flags |= 1
	}
	if p.PriceDropped {
		flags |= 2
	}
	b = append(b, flags)
	b = appendUvarint(b, uint64(p.Ratings.Count()))
	b = appendFloat(b, p.Ratings.Sum())
	b = appendUvarint(b, uint64(p.Recent.Cap()))
	n := p.Recent.Len()
	b = appendUvarint(b, uint64(n))
	var err error
	for i := range n {
		r := p.Recent.At(i)
		b = appendString(b, r.ReviewID)
		b = appendString(b, r.Author)
		b = appendVarint(b, int64(r.Rating))
		b = appendString(b, r.Text)
		if b, err = appendTime(b, r.At); err != nil {
			return b, err
		}
	}
	b = appendString(b, p.SellerID)
	b = appendString(b, p.SellerName)
	b = appendFloat(b, p.SellerRating)
	b = appendLen(b, p.Shipping == nil, len(p.Shipping))
	for _, o := range p.Shipping {
		b = appendString(b, o.Method)
		b = appendVarint(b, o.PriceCents)
		b = appendVarint(b, int64(o.Days))
	}
	b = appendLen(b, p.History == nil, len(p.History))
	for _, h := range p.History {
		if b, err = appendTime(b, h.At); err != nil {
			return b, err
		}
		b = appendVarint(b, h.Cents)
	}
	b = appendVarint(b, p.PreviousPriceCents)
	b = appendUvarint(b, p.Version)
	return appendTime(b, p.UpdatedAt)
}

// Decode implements redisstore.Codec: format 1, or the JSON of earlier
// versions. Bad input gives an *UnknownFormatError, a *CorruptError or
// (old JSON values) a JSON error.
func (ProductCodec) Decode(data string) (catalog.ProductView, error) {
	if len(data) > 0 && data[0] == '{' {
		return decodeJSON[catalog.ProductView](data)
	}
	var p catalog.ProductView
	d, err := newDecoder(data)
	if err != nil {
		return p, err
	}
	p.ID = d.string()
	p.Title = d.string()
	p.Description = d.string()
	p.PriceCents = d.varint()
	p.Stock = d.int()
	flags := d.byte()
	if flags&^3 != 0 {
		d.fail("unknown flags")
	}
	p.InStock, p.PriceDropped = flags&1 != 0, flags&2 != 0
	count, sum := d.uvarint(), d.float()
	if d.err == nil {
		if count > math.MaxInt64 {
			d.fail("rating count out of range")
		} else if p.Ratings, err = readmodel.AverageOf(int64(count), sum); err != nil {
			d.fail(err.Error())
		}
	}
	d.recent(&p)
	p.SellerID = d.string()
	p.SellerName = d.string()
	p.SellerRating = d.float()
	if n, ok := d.len(3); ok { // an option is at least 3 bytes
		p.Shipping = make([]catalog.ShippingOption, n)
		for i := range p.Shipping {
			o := &p.Shipping[i]
			o.Method = d.string()
			o.PriceCents = d.varint()
			o.Days = d.int()
		}
	}
	if n, ok := d.len(4); ok { // a point is at least 4 bytes
		p.History = make([]catalog.PricePoint, n)
		for i := range p.History {
			h := &p.History[i]
			h.At = d.time()
			h.Cents = d.varint()
		}
	}
	p.PreviousPriceCents = d.varint()
	p.Version = d.uvarint()
	p.UpdatedAt = d.time()
	if err := d.end(); err != nil {
		return catalog.ProductView{}, err
	}
	return p, nil
}

// recentBuf is how many reviews recent decodes without allocating a
// scratch slice (catalog.RecentReviews is 5).
const recentBuf = 8

// recent decodes p.Recent.
func (d *decoder) recent(p *catalog.ProductView) {
	capacity, n := d.uvarint(), d.uvarint()
	if d.err != nil {
		return
	}
	// A review is at least 7 bytes; checking n against what is left keeps
	// a corrupt count from allocating.
	if capacity > math.MaxInt32 || n > capacity || n > uint64(len(d.s)-d.i)/7 {
		d.fail("recent reviews out of range")
		return
	}
	var buf [recentBuf]catalog.ReviewSummary
	items := buf[:0]
	if n > recentBuf {
		items = make([]catalog.ReviewSummary, 0, n)
	}
	for range n {
		var r catalog.ReviewSummary
		r.ReviewID = d.string()
		r.Author = d.string()
		r.Rating = d.int()
		r.Text = d.string()
		r.At = d.time()
		items = append(items, r)
	}
	if d.err != nil {
		return
	}
	rec, err := readmodel.RecentOf(int(capacity), items)
	if err != nil {
		d.fail(err.Error())
		return
	}
	p.Recent = rec
}

// Append implements redisstore.Codec; it never fails.
func (SellerCodec) Append(b []byte, s catalog.SellerView) ([]byte, error) {
	b = append(b, formatV1)
	b = appendString(b, s.ID)
	b = appendString(b, s.Name)
	return appendFloat(b, s.Rating), nil
}

// Decode implements redisstore.Codec, like ProductCodec.Decode.
func (SellerCodec) Decode(data string) (catalog.SellerView, error) {
	if len(data) > 0 && data[0] == '{' {
		return decodeJSON[catalog.SellerView](data)
	}
	var s catalog.SellerView
	d, err := newDecoder(data)
	if err != nil {
		return s, err
	}
	s.ID = d.string()
	s.Name = d.string()
	s.Rating = d.float()
	if err := d.end(); err != nil {
		return catalog.SellerView{}, err
	}
	return s, nil
}

// decodeJSON decodes a view stored as JSON by an earlier version. It has
// its own variable so that the one Decode fills for format 1 does not
// escape to the heap through json.Unmarshal.
func decodeJSON[V any](data string) (V, error) {
	var v V
	err := json.Unmarshal([]byte(data), &v)
	return v, err
}

func appendUvarint(b []byte, x uint64) []byte {
	for x >= 0x80 {
		b = append(b, byte(x)|0x80)
		x >>= 7
	}
	return append(b, byte(x))
}

func appendVarint(b []byte, x int64) []byte {
	return appendUvarint(b, uint64(x<<1)^uint64(x>>63)) // zigzag
}

func appendString(b []byte, s string) []byte {
	return append(appendUvarint(b, uint64(len(s))), s...)
}

func appendFloat(b []byte, f float64) []byte {
	u := math.Float64bits(f)
	return append(b, byte(u), byte(u>>8), byte(u>>16), byte(u>>24), byte(u>>32), byte(u>>40), byte(u>>48), byte(u>>56))
}

// appendLen appends a slice's length: 0 for nil, else 1+n.
func appendLen(b []byte, isNil bool, n int) []byte {
	if isNil {
		return append(b, 0)
	}
	return appendUvarint(b, uint64(n)+1)
}

// maxOffset bounds a time's zone offset, as time.Parse does for RFC 3339.
const maxOffset = 24 * 60 * 60

// appendTime keeps the instant to the nanosecond, and whether the time
// is in UTC, in the local zone, or else its zone's offset (a zone's name
// and rules are lost, as in JSON's RFC 3339 form). The monotonic reading
// is dropped.
func appendTime(b []byte, t time.Time) ([]byte, error) {
	switch t.Location() {
	case time.UTC:
		b = append(b, 0)
	case time.Local:
		b = append(b, 2)
	default:
		_, off := t.Zone()
		if off <= -maxOffset || off >= maxOffset {
			return b, fmt.Errorf("catalogredis: time %v: zone offset %ds out of range", t, off)
		}
		b = appendVarint(append(b, 1), int64(off))
	}
	b = appendVarint(b, t.Unix())
	return appendUvarint(b, uint64(t.Nanosecond())), nil
}

// decoder reads format 1 from s. The first error sticks: later reads
// return zero values, and end reports it.
type decoder struct {
	s   string
	i   int
	err error
}

func newDecoder(s string) (decoder, error) {
	if len(s) == 0 {
		return decoder{}, &CorruptError{Reason: "empty value"}
	}
	if s[0] != formatV1 {
		return decoder{}, &UnknownFormatError{Format: s[0]}
	}
	return decoder{s: s, i: 1}, nil
}

func (d *decoder) fail(reason string) {
	if d.err == nil {
		d.err = &CorruptError{Format: formatV1, Offset: d.i, Reason: reason}
	}
}

// end returns the first error, or one if bytes are left over.
func (d *decoder) end() error {
	if d.err == nil && d.i != len(d.s) {
		d.fail(fmt.Sprintf("%d bytes after the last field", len(d.s)-d.i))
	}
	return d.err
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.i >= len(d.s) {
		d.fail("truncated")
		return 0
	}
	c := d.s[d.i]
	d.i++
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	var x uint64
	for shift := uint(0); ; shift += 7 {
		if d.i >= len(d.s) {
			d.fail("truncated")
			return 0
		}
		c := d.s[d.i]
		d.i++
		if shift == 63 && c > 1 {
			d.fail("varint overflows 64 bits")
			return 0
		}
		x |= uint64(c&0x7f) << shift
		if c < 0x80 {
			if c == 0 && shift > 0 {
				d.fail("varint not minimal") // one value, one encoding
				return 0
			}
			return x
		}
	}
}

func (d *decoder) varint() int64 {
	u := d.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

// int reads a varint that must fit an int.
func (d *decoder) int() int {
	x := d.varint()
	if int64(int(x)) != x {
		d.fail("integer out of range")
		return 0
	}
	return int(x)
}

func (d *decoder) float() float64 {
	if d.err != nil {
		return 0
	}
	if len(d.s)-d.i < 8 {
		d.fail("truncated")
		return 0
	}
	s := d.s[d.i : d.i+8]
	d.i += 8
	return math.Float64frombits(uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56)
}

// string returns a substring of the stored value: no copy.
func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.s)-d.i) {
		d.fail("string longer than the value")
		return ""
	}
	s := d.s[d.i : d.i+int(n)]
	d.i += int(n)
	return s
}

// len reads a slice length (0 nil, else 1+n) and reports whether to make
// the slice; elements are at least min bytes, so a length that the rest
// of the value cannot hold is refused before anything is allocated.
func (d *decoder) len(min int) (int, bool) {
	u := d.uvarint()
	if d.err != nil || u == 0 {
		return 0, false
	}
	n := u - 1
	if n > uint64(len(d.s)-d.i)/uint64(min) {
		d.fail("slice longer than the value")
		return 0, false
	}
	return int(n), true
}

func (d *decoder) time() time.Time {
	zone := d.byte()
	var off int64
	switch zone {
	case 0:
	case 1:
		off = d.varint()
		if off <= -maxOffset || off >= maxOffset {
			d.fail("zone offset out of range")
		}
	case 2:
	default:
		d.fail("unknown time zone kind")
	}
	sec, nsec := d.varint(), d.uvarint()
	if nsec >= 1e9 {
		d.fail("nanoseconds out of range")
	}
	if d.err != nil {
		return time.Time{}
	}
	t := time.Unix(sec, int64(nsec))
	switch zone {
	case 0:
		return t.UTC()
	case 2:
		return t // time.Unix gives local time
	}
	return t.In(time.FixedZone("", int(off)))
}
