package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/examples/catalog"
)

// Query limits.
const (
	DefaultTopRated = 10
	MaxTopRated     = 100
	DefaultPage     = 50
	MaxPage         = 500
)

func (a *api) routes() {
	m := a.mux
	m.HandleFunc("GET /healthz", a.healthz)
	m.HandleFunc("GET /readyz", a.readyz)
	m.HandleFunc("GET /v1/status", a.status)

	// Writes. The acting seller is a body field: the example has no
	// authentication, a real service would take it from the caller's
	// identity.
	m.HandleFunc("POST /v1/sellers", write(a, http.StatusCreated, false, func(r *http.Request, b *RegisterSellerRequest, _ uint64) (any, string) {
		return catalog.RegisterSeller{SellerID: b.SellerID, Name: b.Name, Rating: b.Rating}, "/v1/sellers/" + b.SellerID
	}))
	m.HandleFunc("PUT /v1/sellers/{id}/name", write(a, http.StatusOK, false, func(r *http.Request, b *RenameSellerRequest, _ uint64) (any, string) {
		return catalog.RenameSeller{SellerID: r.PathValue("id"), Name: b.Name}, ""
	}))
	m.HandleFunc("PUT /v1/sellers/{id}/rating", write(a, http.StatusOK, false, func(r *http.Request, b *RateSellerRequest, _ uint64) (any, string) {
		return catalog.RateSeller{SellerID: r.PathValue("id"), Rating: b.Rating}, ""
	}))
	m.HandleFunc("POST /v1/products", write(a, http.StatusCreated, false, func(r *http.Request, b *ListProductRequest, _ uint64) (any, string) {
		return catalog.ListProduct{ProductID: b.ProductID, SellerID: b.SellerID, Title: b.Title, Description: b.Description, PriceCents: b.PriceCents, Stock: b.Stock},
			"/v1/products/" + b.ProductID
	}))
	m.HandleFunc("PUT /v1/products/{id}/price", write(a, http.StatusOK, true, func(r *http.Request, b *UpdatePriceRequest, v uint64) (any, string) {
		return catalog.UpdatePrice{ProductID: r.PathValue("id"), SellerID: b.SellerID, PriceCents: b.PriceCents, ExpectedVersion: v}, ""
	}))
	m.HandleFunc("PUT /v1/products/{id}/details", write(a, http.StatusOK, true, func(r *http.Request, b *UpdateDetailsRequest, v uint64) (any, string) {
		return catalog.UpdateDetails{ProductID: r.PathValue("id"), SellerID: b.SellerID, Title: b.Title, Description: b.Description, ExpectedVersion: v}, ""
	}))
	m.HandleFunc("PUT /v1/products/{id}/stock", write(a, http.StatusOK, true, func(r *http.Request, b *UpdateStockRequest, v uint64) (any, string) {
		return catalog.UpdateStock{ProductID: r.PathValue("id"), SellerID: b.SellerID, Stock: b.Stock, ExpectedVersion: v}, ""
	}))
	m.HandleFunc("PUT /v1/products/{id}/shipping", write(a, http.StatusOK, true, func(r *http.Request, b *SetShippingRequest, v uint64) (any, string) {
		opts := make([]catalog.ShippingOption, len(b.Options))
		for i, o := range b.Options {
			opts[i] = catalog.ShippingOption{Method: o.Method, PriceCents: o.PriceCents, Days: o.Days}
		}
		return catalog.SetShipping{ProductID: r.PathValue("id"), SellerID: b.SellerID, Options: opts, ExpectedVersion: v}, ""
	}))
	m.HandleFunc("POST /v1/products/{id}/reservations", write(a, http.StatusOK, false, func(r *http.Request, b *ReserveStockRequest, _ uint64) (any, string) {
		return catalog.ReserveStock{ProductID: r.PathValue("id"), Quantity: b.Quantity}, ""
	}))
	m.HandleFunc("POST /v1/products/{id}/restock", write(a, http.StatusOK, false, func(r *http.Request, b *RestockRequest, _ uint64) (any, string) {
		return catalog.Restock{ProductID: r.PathValue("id"), SellerID: b.SellerID, Quantity: b.Quantity}, ""
	}))
	m.HandleFunc("POST /v1/products/{id}/reviews", write(a, http.StatusCreated, false, func(r *http.Request, b *SubmitReviewRequest, _ uint64) (any, string) {
		return catalog.SubmitReview{ReviewID: b.ReviewID, ProductID: r.PathValue("id"), Author: b.Author, Rating: b.Rating, Text: b.Text},
			"/v1/products/" + r.PathValue("id")
	}))

	// Queries.
	m.HandleFunc("GET /v1/products/{id}", a.product)
	m.HandleFunc("GET /v1/top-rated", a.topRated)
	m.HandleFunc("GET /v1/in-stock", a.inStock)
	m.HandleFunc("GET /v1/sellers/{id}", a.seller)
	m.HandleFunc("GET /v1/sellers/{id}/products", a.bySeller)
}

// WriteResult is the body of a successful write; Position is also in the
// Cqrs-Position header.
type WriteResult struct {
	Position event.Position `json:"position"`
}

// write builds the handler of one command route: body B decoded strictly,
// If-Match turned into the command's expected version where ifMatch is
// set (and refused elsewhere), the command dispatched, the position
// returned.
func write[B any](a *api, status int, ifMatch bool, build func(r *http.Request, b *B, expected uint64) (cmd any, location string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.o.Writer == nil {
			a.problem(w, r, Problem{Type: TypeMisdirected, Status: http.StatusMisdirectedRequest, Detail: "this process takes no writes; send them to a writer"})
			return
		}
		var expected uint64
		if im := r.Header.Get("If-Match"); im != "" {
			if !ifMatch {
				a.problem(w, r, Problem{Type: TypeBadRequest, Status: http.StatusBadRequest, Detail: "If-Match is not supported on this route"})
				return
			}
			v, p, ok := parseIfMatch(im)
			if !ok {
				a.problem(w, r, p)
				return
			}
			expected = v
		}
		var b B
		if p, ok := a.decode(w, r, &b); !ok {
			a.problem(w, r, p)
			return
		}
		cmd, loc := build(r, &b, expected)
		res, err := a.o.Writer.Dispatch(r.Context(), cmd)
		var ace *command.AfterCommitError
		if errors.As(err, &ace) {
			// The command committed; only this process's inline views
			// failed to follow (a stopped projector, a held-back log).
			// The write stands, so the client is told so, with its
			// token: a read with it waits for the views, or gets 503.
			a.log.WarnContext(r.Context(), "catalogd: committed, but the inline views did not follow", "position", ace.Position.String(), "err", ace.Err)
			res, err = command.Result{Position: ace.Position}, nil
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		w.Header().Set(PositionHeader, res.Position.String())
		if loc != "" && status == http.StatusCreated {
			w.Header().Set("Location", loc)
		}
		writeJSON(w, status, WriteResult{Position: res.Position})
	}
}

// parseIfMatch reads an If-Match of one strong ETag ("7") or "*" (any
// version: the product only has to exist, which the command checks
// anyway). A weak ETag never matches (RFC 9110 uses the strong comparison
// for If-Match), so it fails the precondition.
func parseIfMatch(h string) (uint64, Problem, bool) {
	h = strings.TrimSpace(h)
	if h == "*" {
		return 0, Problem{}, true
	}
	if strings.HasPrefix(h, "W/") {
		return 0, Problem{Type: TypePreconditionFail, Status: http.StatusPreconditionFailed, Detail: "a weak ETag never matches If-Match"}, false
	}
	if len(h) >= 3 && h[0] == '"' && h[len(h)-1] == '"' {
		if v, err := strconv.ParseUint(h[1:len(h)-1], 10, 64); err == nil && v > 0 {
			return v, Problem{}, true
		}
	}
	return 0, Problem{Type: TypeBadRequest, Status: http.StatusBadRequest, Detail: `If-Match must be one ETag of this API, such as "3", or *`}, false
}

// decode reads the body into dst strictly: JSON content type, at most
// MaxBodyBytes, valid UTF-8 (encoding/json would silently replace invalid
// bytes, and the stored text would differ from what was sent), no unknown
// fields, nothing after the object.
func (a *api) decode(w http.ResponseWriter, r *http.Request, dst any) (Problem, bool) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return Problem{Type: TypeUnsupportedMedia, Status: http.StatusUnsupportedMediaType, Detail: "send the body as application/json"}, false
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.o.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return a.classify(r, err), false
		}
		return Problem{Type: TypeBadRequest, Status: http.StatusBadRequest, Detail: "the body could not be read"}, false
	}
	bad := func(detail string) (Problem, bool) {
		return Problem{Type: TypeBadRequest, Status: http.StatusBadRequest, Detail: detail}, false
	}
	if !utf8.Valid(body) {
		return bad("the body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.Is(err, io.EOF):
			return bad("the body is empty; send a JSON object")
		case errors.As(err, &se):
			return bad("malformed JSON at byte " + strconv.FormatInt(se.Offset, 10))
		case errors.As(err, &te):
			field := te.Field
			if field == "" {
				return bad("the body must be a JSON object")
			}
			return bad("field " + field + " must be " + jsonType(te.Type.Kind().String()))
		case errors.Is(err, io.ErrUnexpectedEOF):
			return bad("the JSON body ends early")
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			// encoding/json has no type for it; the text names the
			// client's own field.
			return bad("unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field "))
		default:
			return bad("the body is not a valid JSON object")
		}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return bad("unexpected data after the JSON object")
	}
	return Problem{}, true
}

// jsonType names a Go kind the way a JSON client thinks of it.
func jsonType(kind string) string {
	switch {
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"):
		return "an integer"
	case strings.HasPrefix(kind, "float"):
		return "a number"
	case kind == "string":
		return "a string"
	case kind == "bool":
		return "true or false"
	case kind == "slice":
		return "an array"
	default:
		return "an object"
	}
}

// readable checks that this process serves queries and, when the request
// carries a position token, waits (bounded) until the views reached it.
// It has answered the request when it returns false.
func (a *api) readable(w http.ResponseWriter, r *http.Request) bool {
	if a.o.Views == nil {
		a.problem(w, r, Problem{Type: TypeMisdirected, Status: http.StatusMisdirectedRequest, Detail: "this process serves no queries; send them to a reader"})
		return false
	}
	tok := r.Header.Get(PositionHeader)
	if tok == "" {
		return true
	}
	pos, err := event.ParsePosition(tok)
	if err != nil {
		a.problem(w, r, Problem{Type: TypeBadRequest, Status: http.StatusBadRequest, Detail: PositionHeader + " must be a position token returned by a write"})
		return false
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.o.ConsistencyTimeout)
	err = a.o.Progress.WaitFor(ctx, "", pos)
	cancel()
	if err != nil {
		a.fail(w, r, err)
		return false
	}
	return true
}

// ProductJSON is the product view as served by GET /v1/products/{id}.
type ProductJSON struct {
	ID                  string         `json:"id"`
	Title               string         `json:"title"`
	Description         string         `json:"description"`
	PriceCents          int64          `json:"price_cents"`
	Stock               int            `json:"stock"`
	InStock             bool           `json:"in_stock"`
	AverageRating       float64        `json:"average_rating"`
	ReviewCount         int            `json:"review_count"`
	RecentReviews       []ReviewJSON   `json:"recent_reviews"`
	Seller              SellerJSON     `json:"seller"`
	Shipping            []ShippingJSON `json:"shipping"`
	Price30DaysAgoCents *int64         `json:"price_30_days_ago_cents"`
	Price90DaysAgoCents *int64         `json:"price_90_days_ago_cents"`
	PriceDropped        bool           `json:"price_dropped"`
	PreviousPriceCents  int64          `json:"previous_price_cents,omitempty"`
	Trending            bool           `json:"trending"`
	Version             uint64         `json:"version"`
	UpdatedAt           time.Time      `json:"updated_at"`
}

// ReviewJSON is a review in a product view.
type ReviewJSON struct {
	ReviewID string    `json:"review_id"`
	Author   string    `json:"author"`
	Rating   int       `json:"rating"`
	Text     string    `json:"text"`
	At       time.Time `json:"at"`
}

// SellerJSON is a seller, in a product view and from GET /v1/sellers/{id}.
type SellerJSON struct {
	ID     string  `json:"id"`
	Name   string  `json:"name"`
	Rating float64 `json:"rating"`
}

// ShippingJSON is a shipping option, in requests and product views.
type ShippingJSON struct {
	Method     string `json:"method"`
	PriceCents int64  `json:"price_cents"`
	Days       int    `json:"days"`
}

// ETag returns the strong ETag of a product version.
func ETag(version uint64) string { return `"` + strconv.FormatUint(version, 10) + `"` }

func (a *api) product(w http.ResponseWriter, r *http.Request) {
	if !a.readable(w, r) {
		return
	}
	ctx := r.Context()
	if pv, ok := a.o.Views.(ProductJSONViews); ok {
		a.productJSONView(w, r, pv)
		return
	}
	p, err := a.o.Views.Product(ctx, r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	etag := ETag(p.Version)
	w.Header().Set("ETag", etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && noneMatchHit(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	now := a.o.Now()
	trending, err := a.o.Views.Trending(ctx, p.ID, now)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeProduct(w, productJSON(p, trending, now))
}

// productBufs recycles the product handler's encoding buffers (see bufs).
var productBufs = sync.Pool{New: func() any { return new([]byte) }}

// jsonContentType is shared by every product answer instead of a fresh
// slice per Header().Set; nothing in net/http modifies a header's slice in
// place.
var jsonContentType = []string{"application/json"}

// writeProduct writes p with status 200, as writeJSON would (the same bytes
// and headers), through ProductJSON.AppendJSON.
func writeProduct(w http.ResponseWriter, p ProductJSON) {
	bp := productBufs.Get().(*[]byte)
	b, err := p.AppendJSON((*bp)[:0])
	if err != nil {
		productBufs.Put(bp)
		http.Error(w, "encoding failed", http.StatusInternalServerError)
		return
	}
	b = append(b, '\n') // as json.Encoder
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	if cap(b) <= maxPooled {
		*bp = b
		productBufs.Put(bp)
	}
}

// ProductJSONViews is an optional interface of Views: views that build
// the product answer themselves, such as catalogd's -naive-join baseline,
// which reads it from PostgreSQL with one query instead of a view. The
// product handler uses it instead of Product and Trending when Views
// implements it.
type ProductJSONViews interface {
	// ProductJSON returns the product as served at now, or an error
	// matching store.ErrNotFound. A zero Version sends no ETag.
	ProductJSON(ctx context.Context, id string, now time.Time) (ProductJSON, error)
}

func (a *api) productJSONView(w http.ResponseWriter, r *http.Request, pv ProductJSONViews) {
	pj, err := pv.ProductJSON(r.Context(), r.PathValue("id"), a.o.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if pj.Version > 0 {
		etag := ETag(pj.Version)
		w.Header().Set("ETag", etag)
		if inm := r.Header.Get("If-None-Match"); inm != "" && noneMatchHit(inm, etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	writeProduct(w, pj)
}

// noneMatchHit applies If-None-Match's weak comparison.
func noneMatchHit(h, etag string) bool {
	for _, t := range strings.Split(h, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

func productJSON(p catalog.ProductView, trending bool, now time.Time) ProductJSON {
	out := ProductJSON{
		ID: p.ID, Title: p.Title, Description: p.Description, PriceCents: p.PriceCents,
		Stock: p.Stock, InStock: p.InStock, AverageRating: p.AverageRating(), ReviewCount: p.ReviewCount(),
		RecentReviews: make([]ReviewJSON, 0, p.Recent.Len()),
		Seller:        SellerJSON{ID: p.SellerID, Name: p.SellerName, Rating: p.SellerRating},
		Shipping:      make([]ShippingJSON, len(p.Shipping)),
		PriceDropped:  p.PriceDropped, PreviousPriceCents: p.PreviousPriceCents,
		Trending: trending, Version: p.Version, UpdatedAt: p.UpdatedAt,
	}
	for rv := range p.Recent.All() {
		out.RecentReviews = append(out.RecentReviews, ReviewJSON{ReviewID: rv.ReviewID, Author: rv.Author, Rating: rv.Rating, Text: rv.Text, At: rv.At})
	}
	for i, o := range p.Shipping {
		out.Shipping[i] = ShippingJSON{Method: o.Method, PriceCents: o.PriceCents, Days: o.Days}
	}
	if c, ok := p.PriceDaysAgo(now, 30); ok {
		out.Price30DaysAgoCents = &c
	}
	if c, ok := p.PriceDaysAgo(now, 90); ok {
		out.Price90DaysAgoCents = &c
	}
	return out
}

// RatedJSON is an entry of GET /v1/top-rated.
type RatedJSON struct {
	ID     string  `json:"id"`
	Rating float64 `json:"rating"`
}

// PageJSON is a page of product IDs; Next is the cursor of the next page
// (pass it as ?after=), empty on the last page.
type PageJSON struct {
	Products []string `json:"products"`
	Next     string   `json:"next,omitempty"`
}

// limit reads the limit query parameter.
func limit(r *http.Request, def, maxN int) (int, bool) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxN {
		return 0, false
	}
	return n, true
}

func (a *api) badLimit(w http.ResponseWriter, r *http.Request, maxN int) {
	a.problem(w, r, Problem{Type: TypeBadRequest, Status: http.StatusBadRequest,
		Errors: []FieldProblem{{Field: "limit", Message: "must be an integer between 1 and " + strconv.Itoa(maxN)}}, Detail: "invalid query parameter"})
}

func (a *api) topRated(w http.ResponseWriter, r *http.Request) {
	n, ok := limit(r, DefaultTopRated, MaxTopRated)
	if !ok {
		a.badLimit(w, r, MaxTopRated)
		return
	}
	if !a.readable(w, r) {
		return
	}
	top, err := a.o.Views.TopRated(r.Context(), n, make([]catalog.Rated, 0, n))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := struct {
		Products []RatedJSON `json:"products"`
	}{Products: make([]RatedJSON, len(top))}
	for i, t := range top {
		out.Products[i] = RatedJSON{ID: t.Key, Rating: t.Score}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) inStock(w http.ResponseWriter, r *http.Request) {
	n, ok := limit(r, DefaultPage, MaxPage)
	if !ok {
		a.badLimit(w, r, MaxPage)
		return
	}
	if !a.readable(w, r) {
		return
	}
	ids, err := a.o.Views.InStock(r.Context(), r.URL.Query().Get("after"), n, make([]string, 0, n))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	page := PageJSON{Products: ids}
	if len(ids) == n {
		page.Next = ids[n-1]
	}
	writeJSON(w, http.StatusOK, page)
}

func (a *api) seller(w http.ResponseWriter, r *http.Request) {
	if !a.readable(w, r) {
		return
	}
	s, err := a.o.Views.Seller(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, SellerJSON{ID: s.ID, Name: s.Name, Rating: s.Rating})
}

func (a *api) bySeller(w http.ResponseWriter, r *http.Request) {
	if !a.readable(w, r) {
		return
	}
	ctx, id := r.Context(), r.PathValue("id")
	if _, err := a.o.Views.Seller(ctx, id); err != nil {
		a.fail(w, r, err)
		return
	}
	ids, err := a.o.Views.BySeller(ctx, id, nil)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if ids == nil {
		ids = []string{}
	}
	writeJSON(w, http.StatusOK, PageJSON{Products: ids})
}
