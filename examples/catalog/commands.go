package catalog

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cqrskit/cqrs/command"
)

// Limits enforced by stateless validation (Validate). Lengths count
// characters (runes), so a limit of n bounds a field at 4n bytes.
const (
	MaxID              = 64   // SellerID, ProductID, ReviewID
	MaxName            = 100  // seller names, review authors
	MaxTitle           = 200  // product titles
	MaxDescription     = 5000 // product descriptions
	MaxReviewText      = 2000 // review texts
	MaxMethod          = 50   // shipping method names
	MaxShippingOptions = 10   // shipping options per product
	MaxShippingDays    = 365
	MaxPriceCents      = 100_000_000 // one million in currency units
	MaxStock           = 1_000_000_000
	MaxQuantity        = 1_000_000 // units per ReserveStock or Restock
)

// Codes of the business-rule rejections (command.RejectedError.Code) the
// catalog returns.
const (
	// CodeInsufficientStock: ReserveStock asked for more than is in stock.
	CodeInsufficientStock = "insufficient_stock"
	// CodeStockLimit: Restock would take stock above MaxStock.
	CodeStockLimit = "stock_limit"
)

// Text rules, checked by every command's Validate, so that every store
// accepts and rejects exactly the same input (PostgreSQL refuses NUL and
// invalid UTF-8; JSON would silently rewrite the latter): every string must
// be valid UTF-8, contain no control characters (C0, DEL, C1; descriptions
// and review texts may contain tab, line feed and carriage return) and stay
// within its limit above. IDs, names, titles and shipping methods are
// single-line.

// RegisterSeller adds a seller.
type RegisterSeller struct {
	SellerID string
	Name     string
	Rating   float64 // 0-5
}

// RenameSeller changes a seller's display name; every product view of the
// seller shows the new name.
type RenameSeller struct {
	SellerID string
	Name     string
}

// RateSeller sets a seller's rating (0-5).
type RateSeller struct {
	SellerID string
	Rating   float64
}

// ListProduct puts a new product on sale. SellerID is the acting seller.
type ListProduct struct {
	ProductID   string
	SellerID    string
	Title       string
	Description string
	PriceCents  int64
	Stock       int
}

// UpdatePrice changes a product's price. Only its seller may.
//
// ExpectedVersion, when not zero, is the product's version the change is
// based on (ProductView.Version, an HTTP If-Match): if the product changed
// since, the command fails with store.ErrConflict (*command.StaleError)
// and changes nothing. The same holds for UpdateStock, UpdateDetails and
// SetShipping.
type UpdatePrice struct {
	ProductID       string
	SellerID        string
	PriceCents      int64
	ExpectedVersion uint64
}

// UpdateStock sets a product's stock level. Only its seller may. To take
// stock out or put it back under concurrency use ReserveStock and Restock,
// which never lose an update; an absolute level is safe only with
// ExpectedVersion (see UpdatePrice).
type UpdateStock struct {
	ProductID       string
	SellerID        string
	Stock           int
	ExpectedVersion uint64
}

// ReserveStock takes Quantity units out of a product's stock, for an order.
// Stock never goes below zero: when fewer than Quantity units are left, the
// command is rejected with code CodeInsufficientStock and nothing changes.
// Any caller may reserve.
type ReserveStock struct {
	ProductID string
	Quantity  int
}

// Restock adds Quantity units to a product's stock. Only its seller may. It
// is rejected with CodeStockLimit if stock would exceed MaxStock.
type Restock struct {
	ProductID string
	SellerID  string
	Quantity  int
}

// UpdateDetails changes a product's title and description. Only its seller
// may. ExpectedVersion: see UpdatePrice.
type UpdateDetails struct {
	ProductID       string
	SellerID        string
	Title           string
	Description     string
	ExpectedVersion uint64
}

// SubmitReview adds a customer review with a rating from 1 to 5.
type SubmitReview struct {
	ReviewID  string
	ProductID string
	Author    string
	Rating    int
	Text      string
}

// SetShipping replaces a product's shipping options (at most
// MaxShippingOptions, methods unique). Only its seller may. ExpectedVersion:
// see UpdatePrice.
type SetShipping struct {
	ProductID       string
	SellerID        string
	Options         []ShippingOption
	ExpectedVersion uint64
}

// checker collects field errors; its zero value is ready.
type checker struct{ v *command.ValidationError }

func (c *checker) add(field, msg string) {
	if c.v == nil {
		c.v = &command.ValidationError{}
	}
	c.v.Add(field, msg)
}

func (c *checker) check(ok bool, field, msg string) {
	if !ok {
		c.add(field, msg)
	}
}

func (c *checker) err() error { return c.v.Err() }

// text checks one string field: it reports at most one problem per field.
func (c *checker) text(field, s string, limit int, required, multiline bool) {
	switch {
	case !utf8.ValidString(s):
		c.add(field, "is not valid UTF-8")
	case required && strings.TrimSpace(s) == "":
		c.add(field, "is required")
	case utf8.RuneCountInString(s) > limit:
		c.add(field, fmt.Sprintf("is longer than %d characters", limit))
	default:
		for _, r := range s {
			if unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\t' || r == '\r')) {
				c.add(field, fmt.Sprintf("contains the control character %U", r))
				return
			}
		}
	}
}

func (c *checker) id(field, s string)   { c.text(field, s, MaxID, true, false) }
func (c *checker) name(field, s string) { c.text(field, s, MaxName, true, false) }

func (c *checker) title(s string) { c.text("Title", s, MaxTitle, true, false) }

func (c *checker) description(s string) {
	c.text("Description", s, MaxDescription, false, true)
}

// between checks lo <= n <= hi; the message is only built on failure, so
// valid commands validate without allocating.
func (c *checker) between(field string, n, lo, hi int64) {
	if n < lo || n > hi {
		c.add(field, fmt.Sprintf("must be between %d and %d", lo, hi))
	}
}

func (c *checker) price(field string, cents int64, min int64) {
	c.between(field, cents, min, MaxPriceCents)
}

func (c *checker) stock(n int) { c.between("Stock", int64(n), 0, MaxStock) }

func (c *checker) quantity(n int) { c.between("Quantity", int64(n), 1, MaxQuantity) }

func (c *checker) sellerRating(r float64) {
	c.check(r >= 0 && r <= 5, "Rating", "must be between 0 and 5") // false for NaN
}

// Validate implements command.Validator.
func (c RegisterSeller) Validate() error {
	var v checker
	v.id("SellerID", c.SellerID)
	v.name("Name", c.Name)
	v.sellerRating(c.Rating)
	return v.err()
}

// Validate implements command.Validator.
func (c RenameSeller) Validate() error {
	var v checker
	v.id("SellerID", c.SellerID)
	v.name("Name", c.Name)
	return v.err()
}

// Validate implements command.Validator.
func (c RateSeller) Validate() error {
	var v checker
	v.id("SellerID", c.SellerID)
	v.sellerRating(c.Rating)
	return v.err()
}

// Validate implements command.Validator.
func (c ListProduct) Validate() error {
	var v checker
	v.id("ProductID", c.ProductID)
	v.id("SellerID", c.SellerID)
	v.title(c.Title)
	v.description(c.Description)
	v.price("PriceCents", c.PriceCents, 1)
	v.stock(c.Stock)
	return v.err()
}

// Validate implements command.Validator.
func (c UpdatePrice) Validate() error {
	var v checker
	v.id("ProductID", c.ProductID)
	v.id("SellerID", c.SellerID)
	v.price("PriceCents", c.PriceCents, 1)
	return v.err()
}

// Validate implements command.Validator.
func (c UpdateStock) Validate() error {
	var v checker
	v.id("ProductID", c.ProductID)
	v.id("SellerID", c.SellerID)
	v.stock(c.Stock)
	return v.err()
}

// Validate implements command.Validator.
func (c ReserveStock) Validate() error {
	var v checker
	v.id("ProductID", c.ProductID)
	v.quantity(c.Quantity)
	return v.err()
}

// Validate implements command.Validator.
func (c Restock) Validate() error {
	var v checker
	v.id("ProductID", c.ProductID)
	v.id("SellerID", c.SellerID)
	v.quantity(c.Quantity)
	return v.err()
}

// Validate implements command.Validator.
func (c UpdateDetails) Validate() error {
	var v checker
	v.id("ProductID", c.ProductID)
	v.id("SellerID", c.SellerID)
	v.title(c.Title)
	v.description(c.Description)
	return v.err()
}

// Validate implements command.Validator.
func (c SubmitReview) Validate() error {
	var v checker
	v.id("ReviewID", c.ReviewID)
	v.id("ProductID", c.ProductID)
	v.name("Author", c.Author)
	v.check(c.Rating >= 1 && c.Rating <= 5, "Rating", "must be between 1 and 5")
	v.text("Text", c.Text, MaxReviewText, false, true)
	return v.err()
}

// Validate implements command.Validator.
func (c SetShipping) Validate() error {
	var v checker
	v.id("ProductID", c.ProductID)
	v.id("SellerID", c.SellerID)
	if len(c.Options) > MaxShippingOptions {
		v.add("Options", fmt.Sprintf("has %d entries, at most %d are allowed", len(c.Options), MaxShippingOptions))
		return v.err()
	}
	for i, o := range c.Options {
		f := "Options[" + strconv.Itoa(i) + "]."
		v.text(f+"Method", o.Method, MaxMethod, true, false)
		for _, prev := range c.Options[:i] {
			if prev.Method == o.Method && o.Method != "" {
				v.add(f+"Method", "is listed twice: "+o.Method)
				break
			}
		}
		v.price(f+"PriceCents", o.PriceCents, 0)
		v.between(f+"Days", int64(o.Days), 0, MaxShippingDays)
	}
	return v.err()
}
