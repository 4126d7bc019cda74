package catalog

import (
	"strings"
	"unicode/utf8"

	"github.com/cqrskit/cqrs/command"
)

// Limits enforced by stateless validation.
const (
	MaxTitle       = 200
	MaxDescription = 5000
	MaxReviewText  = 2000
	MaxPriceCents  = 100_000_000 // one million in currency units
)

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
type UpdatePrice struct {
	ProductID  string
	SellerID   string
	PriceCents int64
}

// UpdateStock sets a product's stock level. Only its seller may.
type UpdateStock struct {
	ProductID string
	SellerID  string
	Stock     int
}

// UpdateDetails changes a product's title and description. Only its seller
// may.
type UpdateDetails struct {
	ProductID   string
	SellerID    string
	Title       string
	Description string
}

// SubmitReview adds a customer review with a rating from 1 to 5.
type SubmitReview struct {
	ReviewID  string
	ProductID string
	Author    string
	Rating    int
	Text      string
}

// SetShipping replaces a product's shipping options. Only its seller may.
type SetShipping struct {
	ProductID string
	SellerID  string
	Options   []ShippingOption
}

func required(v *command.ValidationError, field, s string) *command.ValidationError {
	if strings.TrimSpace(s) == "" {
		if v == nil {
			v = &command.ValidationError{}
		}
		v.Add(field, "is required")
	}
	return v
}

func check(v *command.ValidationError, ok bool, field, msg string) *command.ValidationError {
	if !ok {
		if v == nil {
			v = &command.ValidationError{}
		}
		v.Add(field, msg)
	}
	return v
}

func validTitle(v *command.ValidationError, title string) *command.ValidationError {
	v = required(v, "Title", title)
	return check(v, utf8.RuneCountInString(title) <= MaxTitle, "Title", "is longer than 200 characters")
}

func validPrice(v *command.ValidationError, cents int64) *command.ValidationError {
	return check(v, cents > 0 && cents <= MaxPriceCents, "PriceCents", "must be between 1 and 100000000")
}

func validRating(v *command.ValidationError, r float64) *command.ValidationError {
	return check(v, r >= 0 && r <= 5, "Rating", "must be between 0 and 5")
}

// Validate implements command.Validator.
func (c RegisterSeller) Validate() error {
	v := required(nil, "SellerID", c.SellerID)
	v = required(v, "Name", c.Name)
	return validRating(v, c.Rating).Err()
}

// Validate implements command.Validator.
func (c RenameSeller) Validate() error {
	return required(required(nil, "SellerID", c.SellerID), "Name", c.Name).Err()
}

// Validate implements command.Validator.
func (c RateSeller) Validate() error {
	return validRating(required(nil, "SellerID", c.SellerID), c.Rating).Err()
}

// Validate implements command.Validator.
func (c ListProduct) Validate() error {
	v := required(nil, "ProductID", c.ProductID)
	v = required(v, "SellerID", c.SellerID)
	v = validTitle(v, c.Title)
	v = check(v, utf8.RuneCountInString(c.Description) <= MaxDescription, "Description", "is longer than 5000 characters")
	v = validPrice(v, c.PriceCents)
	return check(v, c.Stock >= 0, "Stock", "must not be negative").Err()
}

// Validate implements command.Validator.
func (c UpdatePrice) Validate() error {
	v := required(nil, "ProductID", c.ProductID)
	v = required(v, "SellerID", c.SellerID)
	return validPrice(v, c.PriceCents).Err()
}

// Validate implements command.Validator.
func (c UpdateStock) Validate() error {
	v := required(nil, "ProductID", c.ProductID)
	v = required(v, "SellerID", c.SellerID)
	return check(v, c.Stock >= 0, "Stock", "must not be negative").Err()
}

// Validate implements command.Validator.
func (c UpdateDetails) Validate() error {
	v := required(nil, "ProductID", c.ProductID)
	v = required(v, "SellerID", c.SellerID)
	v = validTitle(v, c.Title)
	return check(v, utf8.RuneCountInString(c.Description) <= MaxDescription, "Description", "is longer than 5000 characters").Err()
}

// Validate implements command.Validator.
func (c SubmitReview) Validate() error {
	v := required(nil, "ReviewID", c.ReviewID)
	v = required(v, "ProductID", c.ProductID)
	v = required(v, "Author", c.Author)
	v = check(v, c.Rating >= 1 && c.Rating <= 5, "Rating", "must be between 1 and 5")
	return check(v, utf8.RuneCountInString(c.Text) <= MaxReviewText, "Text", "is longer than 2000 characters").Err()
}

// Validate implements command.Validator.
func (c SetShipping) Validate() error {
	v := required(nil, "ProductID", c.ProductID)
	v = required(v, "SellerID", c.SellerID)
	seen := make(map[string]bool, len(c.Options))
	for _, o := range c.Options {
		v = required(v, "Options.Method", o.Method)
		v = check(v, !seen[o.Method], "Options.Method", "is listed twice: "+o.Method)
		v = check(v, o.PriceCents >= 0 && o.Days >= 0, "Options", "price and days must not be negative")
		seen[o.Method] = true
	}
	return v.Err()
}
