package httpapi

import (
	"errors"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// The product view is the hot read: at 12K reads/s encoding/json's
// reflection and its re-compaction of time.Time's MarshalJSON output were
// about 43 % of the handler's CPU. AppendJSON writes the same bytes by
// hand. The encoding is not cached per view version: the trending badge and
// the 30/90-days-ago prices depend on the clock, so the same version can
// encode differently from one request to the next.

// errNonFinite is AppendJSON's error for a NaN or infinite float, which
// JSON cannot carry (encoding/json refuses them too).
var errNonFinite = errors.New("httpapi: NaN or infinite number in JSON")

// AppendJSON appends p encoded exactly as encoding/json encodes it (HTML
// characters escaped, as json.Marshal and json.Encoder do by default),
// without the trailing newline json.Encoder adds, and without reflection.
// It fails where encoding/json fails: a NaN or infinite float, or a time
// that RFC 3339 cannot represent (year outside 0-9999); dst is then
// returned unchanged.
func (p ProductJSON) AppendJSON(dst []byte) ([]byte, error) {
	n0 := len(dst)
	b, err := p.appendJSON(dst)
	if err != nil {
		return dst[:n0], err
	}
	return b, nil
}

func (p ProductJSON) appendJSON(b []byte) ([]byte, error) {
	var err error
	b = append(b, `{"id":`...)
	b = appendJSONString(b, p.ID)
	b = append(b, `,"title":`...)
	b = appendJSONString(b, p.Title)
	b = append(b, `,"description":`...)
	b = appendJSONString(b, p.Description)
	b = append(b, `,"price_cents":`...)
	b = strconv.AppendInt(b, p.PriceCents, 10)
	b = append(b, `,"stock":`...)
	b = strconv.AppendInt(b, int64(p.Stock), 10)
	b = append(b, `,"in_stock":`...)
	b = strconv.AppendBool(b, p.InStock)
	b = append(b, `,"average_rating":`...)
	if b, err = appendJSONFloat(b, p.AverageRating); err != nil {
		return b, err
	}
	b = append(b, `,"review_count":`...)
	b = strconv.AppendInt(b, int64(p.ReviewCount), 10)
	b = append(b, `,"recent_reviews":`...)
	if p.RecentReviews == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, r := range p.RecentReviews {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = r.appendJSON(b); err != nil {
				return b, err
			}
		}
		b = append(b, ']')
	}
	b = append(b, `,"seller":`...)
	if b, err = p.Seller.appendJSON(b); err != nil {
		return b, err
	}
	b = append(b, `,"shipping":`...)
	if p.Shipping == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, s := range p.Shipping {
			if i > 0 {
				b = append(b, ',')
			}
			b = s.appendJSON(b)
		}
		b = append(b, ']')
	}
	b = append(b, `,"price_30_days_ago_cents":`...)
	b = appendJSONIntPtr(b, p.Price30DaysAgoCents)
	b = append(b, `,"price_90_days_ago_cents":`...)
	b = appendJSONIntPtr(b, p.Price90DaysAgoCents)
	b = append(b, `,"price_dropped":`...)
	b = strconv.AppendBool(b, p.PriceDropped)
	if p.PreviousPriceCents != 0 { // omitempty
		b = append(b, `,"previous_price_cents":`...)
		b = strconv.AppendInt(b, p.PreviousPriceCents, 10)
	}
	b = append(b, `,"trending":`...)
	b = strconv.AppendBool(b, p.Trending)
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, p.Version, 10)
	b = append(b, `,"updated_at":`...)
	if b, err = appendJSONTime(b, p.UpdatedAt); err != nil {
		return b, err
	}
	return append(b, '}'), nil
}

func (r ReviewJSON) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"review_id":`...)
	b = appendJSONString(b, r.ReviewID)
	b = append(b, `,"author":`...)
	b = appendJSONString(b, r.Author)
	b = append(b, `,"rating":`...)
	b = strconv.AppendInt(b, int64(r.Rating), 10)
	b = append(b, `,"text":`...)
	b = appendJSONString(b, r.Text)
	b = append(b, `,"at":`...)
	b, err := appendJSONTime(b, r.At)
	if err != nil {
		return b, err
	}
	return append(b, '}'), nil
}

func (s SellerJSON) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, s.ID)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, s.Name)
	b = append(b, `,"rating":`...)
	b, err := appendJSONFloat(b, s.Rating)
	if err != nil {
		return b, err
	}
	return append(b, '}'), nil
}

func (s ShippingJSON) appendJSON(b []byte) []byte {
	b = append(b, `{"method":`...)
	b = appendJSONString(b, s.Method)
	b = append(b, `,"price_cents":`...)
	b = strconv.AppendInt(b, s.PriceCents, 10)
	b = append(b, `,"days":`...)
	b = strconv.AppendInt(b, int64(s.Days), 10)
	return append(b, '}')
}

func appendJSONIntPtr(b []byte, v *int64) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	return strconv.AppendInt(b, *v, 10)
}

// appendJSONTime appends t as time.Time's MarshalJSON does: quoted RFC 3339
// with nanoseconds, refusing what RFC 3339 cannot represent.
func appendJSONTime(b []byte, t time.Time) ([]byte, error) {
	b = append(b, '"')
	b, err := t.AppendText(b)
	if err != nil {
		return b, err
	}
	return append(b, '"'), nil
}

// appendJSONFloat appends f as encoding/json does for a float64: the
// shortest representation that reads back as f (ECMAScript's number to
// string), plain decimal between 1e-6 and 1e21 and an exponent without
// padding outside.
func appendJSONFloat(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, errNonFinite
	}
	abs := math.Abs(f)
	if abs == 0 || (abs >= 1e-6 && abs < 1e21) {
		return strconv.AppendFloat(b, f, 'f', -1, 64), nil
	}
	b = strconv.AppendFloat(b, f, 'e', -1, 64)
	// strconv pads a negative exponent to two digits (1e-07); JSON's
	// convention does not (1e-7). Positive exponents here are >= 21.
	if n := len(b); b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1]
		b = b[:n-1]
	}
	return b, nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s quoted as encoding/json does with HTML
// escaping on: '"' and '\\' escaped, control characters as \b \f \n \r \t
// or \u00XX, '<' '>' '&' as \u003c \u003e \u0026, U+2028 and U+2029 as
// \u2028 and \u2029, and each byte of invalid UTF-8 as \ufffd.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	done := 0 // s[:done] is in b
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[done:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			done = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[done:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[done:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		done = i
	}
	b = append(b, s[done:]...)
	return append(b, '"')
}
