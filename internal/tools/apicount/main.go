// Command apicount counts the exported API of the packages of a Go module,
// for before/after comparisons when the API is consolidated.
//
// Usage, from the root of the module:
//
//	go run ./internal/tools/apicount [-list] [dir]
//
// dir is the module root (default "."). Every package below it is counted
// except those in another module (a directory with its own go.mod), under
// internal/ or testdata/, or in a directory whose name starts with "." or
// "_". Test files (_test.go) are skipped. For each package it prints:
//
//   - top: exported top-level identifiers: funcs, types, vars and consts
//     (one per name, so `var A, B = ...` counts two);
//   - methods: exported methods declared on exported types, plus the
//     exported methods of exported interface types;
//   - sentinels: exported vars initialised with errors.New;
//   - aliases: exported vars initialised with another package's exported
//     error variable (such as `ErrX = other.ErrX`), counted apart from the
//     sentinels because they add a name but not a value;
//   - errtypes: exported types with an Error() string method (value or
//     pointer receiver).
//
// A TOTAL row sums the columns. With -list it also prints each counted
// name, prefixed by its column, so two runs can be diffed.
//
// The tool uses only go/parser and go/ast: it needs no build and no type
// checking, so it also works on a tree that does not compile.
package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
)

// counts is the exported API of one package.
type counts struct {
	top, methods, sentinels, aliases, errtypes []string
}

func main() {
	list := flag.Bool("list", false, "also print every counted name")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: apicount [-list] [module-root]")
		flag.PrintDefaults()
	}
	flag.Parse()
	root := "."
	switch flag.NArg() {
	case 0:
	case 1:
		root = flag.Arg(0)
	default:
		flag.Usage()
		os.Exit(2)
	}
	pkgs, err := scan(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "apicount:", err)
		os.Exit(1)
	}
	report(os.Stdout, pkgs, *list)
}

// scan parses every package of the module rooted at root and returns its
// counts keyed by directory relative to root.
func scan(root string) (map[string]*counts, error) {
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return nil, fmt.Errorf("%s is not a module root: %w", root, err)
	}
	pkgs := map[string]*counts{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel != "." {
			name := d.Name()
			if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") ||
				name == "testdata" || name == "internal" {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // another module
			}
		}
		c, err := countDir(path)
		if err != nil {
			return err
		}
		if c != nil {
			pkgs[rel] = c
		}
		return nil
	})
	return pkgs, err
}

// countDir counts the exported API of the non-test Go files in dir, or
// returns nil if there are none.
func countDir(dir string) (*counts, error) {
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []*ast.File
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		if f.Name.Name == "main" || strings.HasSuffix(f.Name.Name, "_test") {
			continue // commands have no importable API
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		return nil, nil
	}

	c := &counts{}
	exportedTypes := map[string]bool{}
	errorTypes := map[string]bool{}
	for _, f := range files {
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				if ts.Name.IsExported() {
					exportedTypes[ts.Name.Name] = true
				}
			}
		}
	}
	for _, f := range files {
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					if d.Name.IsExported() {
						c.top = append(c.top, d.Name.Name)
					}
					continue
				}
				recv := receiverName(d.Recv.List[0].Type)
				if !exportedTypes[recv] {
					continue
				}
				if d.Name.IsExported() {
					c.methods = append(c.methods, recv+"."+d.Name.Name)
				}
				if isErrorMethod(d) {
					errorTypes[recv] = true
				}
			case *ast.GenDecl:
				countGenDecl(c, d)
			}
		}
	}
	for name := range errorTypes {
		c.errtypes = append(c.errtypes, name)
	}
	for _, s := range [][]string{c.top, c.methods, c.sentinels, c.aliases, c.errtypes} {
		slices.Sort(s)
	}
	return c, nil
}

// countGenDecl counts the exported names of a const, var or type
// declaration.
func countGenDecl(c *counts, d *ast.GenDecl) {
	for _, spec := range d.Specs {
		switch s := spec.(type) {
		case *ast.TypeSpec:
			if !s.Name.IsExported() {
				continue
			}
			c.top = append(c.top, s.Name.Name)
			if it, ok := s.Type.(*ast.InterfaceType); ok {
				for _, m := range it.Methods.List {
					for _, n := range m.Names { // embedded interfaces have no names
						if n.IsExported() {
							c.methods = append(c.methods, s.Name.Name+"."+n.Name)
						}
					}
				}
			}
		case *ast.ValueSpec:
			for i, n := range s.Names {
				if !n.IsExported() {
					continue
				}
				c.top = append(c.top, n.Name)
				if d.Tok != token.VAR || i >= len(s.Values) {
					continue
				}
				switch {
				case isCall(s.Values[i], "errors", "New"):
					c.sentinels = append(c.sentinels, n.Name)
				case isErrVarRef(s.Values[i]):
					c.aliases = append(c.aliases, n.Name)
				}
			}
		}
	}
}

// receiverName returns the base type name of a method receiver such as
// T, *T, T[K] or *T[K, V].
func receiverName(e ast.Expr) string {
	for {
		switch x := e.(type) {
		case *ast.StarExpr:
			e = x.X
		case *ast.IndexExpr:
			e = x.X
		case *ast.IndexListExpr:
			e = x.X
		case *ast.ParenExpr:
			e = x.X
		case *ast.Ident:
			return x.Name
		default:
			return ""
		}
	}
}

// isErrorMethod reports whether d is `Error() string`.
func isErrorMethod(d *ast.FuncDecl) bool {
	if d.Name.Name != "Error" || d.Type.Params.NumFields() != 0 || d.Type.Results.NumFields() != 1 {
		return false
	}
	id, ok := d.Type.Results.List[0].Type.(*ast.Ident)
	return ok && id.Name == "string"
}

// isCall reports whether e is a call of pkg.fn.
func isCall(e ast.Expr, pkg, fn string) bool {
	call, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == pkg && sel.Sel.Name == fn
}

// isErrVarRef reports whether e is a reference to another package's
// exported error variable, by the Err prefix convention.
func isErrVarRef(e ast.Expr) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	_, ok = sel.X.(*ast.Ident)
	return ok && strings.HasPrefix(sel.Sel.Name, "Err")
}

// report prints one row per package, sorted by directory, and a total.
func report(w io.Writer, pkgs map[string]*counts, list bool) {
	dirs := make([]string, 0, len(pkgs))
	for d := range pkgs {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "package\ttop\tmethods\tsentinels\taliases\terrtypes\t")
	var total [5]int
	for _, d := range dirs {
		c := pkgs[d]
		n := [5]int{len(c.top), len(c.methods), len(c.sentinels), len(c.aliases), len(c.errtypes)}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t\n", d, n[0], n[1], n[2], n[3], n[4])
		for i := range total {
			total[i] += n[i]
		}
	}
	fmt.Fprintf(tw, "TOTAL\t%d\t%d\t%d\t%d\t%d\t\n", total[0], total[1], total[2], total[3], total[4])
	tw.Flush()
	if !list {
		return
	}
	for _, d := range dirs {
		c := pkgs[d]
		for _, col := range []struct {
			name  string
			names []string
		}{{"top", c.top}, {"method", c.methods}, {"sentinel", c.sentinels}, {"alias", c.aliases}, {"errtype", c.errtypes}} {
			for _, n := range col.names {
				fmt.Fprintf(w, "%s\t%s\t%s\n", d, col.name, n)
			}
		}
	}
}
