package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// fixture is a small module tree: the root package, a sub-package, an
// internal package, a nested module and a test file, written to a
// temporary directory (a go.mod committed under testdata would be taken
// for a module of the workspace by CI).
var fixture = map[string]string{
	"a.go": `package mod

import (
	"errors"
	"fmt"
)

var ErrOne = errors.New("one")

var (
	ErrAlias     = fmt.ErrUnsupported
	Plain, Other = 1, 2
	hidden       = errors.New("hidden")
)

const Max = 3

type T struct{ A int }

func (T) Method()          {}
func (*T) unexported()     {}
func (t *T) Error() string { return "t" }

type Shape interface {
	Area() float64
	fmt.Stringer
}

type g[K comparable] struct{}

func (g[K]) Exported() {}

func New() *T { return nil }
`,
	"a_test.go": `package mod

func TestOnly() {}
`,
	"go.mod": `module example.com/mod

go 1.26
`,
	"internal/x/x.go": `package x

func Hidden() {}
`,
	"other/go.mod": `module example.com/other
`,
	"other/o.go": `package other

func Skipped() {}
`,
	"sub/sub.go": `package sub

type E struct{}

func (E) Error() string { return "" }
`,
}

func TestScan(t *testing.T) {
	dir := t.TempDir()
	for name, text := range fixture {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pkgs, err := scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for d := range pkgs {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	if want := []string{".", "sub"}; !slices.Equal(dirs, want) {
		t.Fatalf("packages %v, want %v (internal/, other modules and test files skipped)", dirs, want)
	}
	root := pkgs["."]
	for _, tc := range []struct {
		col       string
		got, want []string
	}{
		{"top", root.top, []string{"ErrAlias", "ErrOne", "Max", "New", "Other", "Plain", "Shape", "T"}},
		{"methods", root.methods, []string{"Shape.Area", "T.Error", "T.Method"}},
		{"sentinels", root.sentinels, []string{"ErrOne"}},
		{"aliases", root.aliases, []string{"ErrAlias"}},
		{"errtypes", root.errtypes, []string{"T"}},
		{"sub errtypes", pkgs["sub"].errtypes, []string{"E"}},
	} {
		if !slices.Equal(tc.got, tc.want) {
			t.Errorf("%s = %v, want %v", tc.col, tc.got, tc.want)
		}
	}
}
