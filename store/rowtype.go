package store

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// typeInfo is what NewTable learns once about a key or row type: whether a
// durable store can round-trip it faithfully, which parts of a value must be
// checked at every write, and whether a copy must be deep.
type typeInfo struct {
	err    string // why the type is refused, or ""
	flat   []flatOp
	check  func(v reflect.Value) string // for values that flat ops cannot reach; nil if none
	refs   bool                         // holds pointers, slices or maps: a plain copy shares memory
	isText bool                         // a string kind: keys are used as they are
}

// flatOp checks one string or float at a fixed offset in a value.
type flatOp struct {
	off  uintptr
	kind reflect.Kind // String, Float32 or Float64
}

var (
	marshalerType   = reflect.TypeFor[json.Marshaler]()
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
)

// opaque reports whether t encodes itself: such types (time.Time, say) are
// trusted to round-trip, and are copied as plain values.
func opaque(t reflect.Type) bool {
	return t.Implements(marshalerType) && reflect.PointerTo(t).Implements(unmarshalerType)
}

// analyze inspects t. key selects the rules for keys, which must also be
// free of pointers, since two pointers to equal values are different keys in
// memory but one in JSON.
func analyze(t reflect.Type, key bool) *typeInfo {
	ti := &typeInfo{isText: t.Kind() == reflect.String}
	var flat []flatOp
	inline := true // every check is a flat op so far
	var walk func(t reflect.Type, path string, off uintptr, direct bool) (func(reflect.Value) string, string)
	walk = func(t reflect.Type, path string, off uintptr, direct bool) (func(reflect.Value) string, string) {
		where := func() string {
			if path == "" {
				return ""
			}
			return " at " + path
		}
		if opaque(t) {
			// The type encodes itself; a slice, map or pointer form (say
			// json.RawMessage) still shares memory when copied as a value.
			switch t.Kind() {
			case reflect.Pointer, reflect.Slice, reflect.Map:
				if key {
					return nil, t.Kind().String() + where() + ": keys must be plain values (strings, numbers, structs of them)"
				}
				ti.refs = true
			}
			return nil, ""
		}
		switch t.Kind() {
		case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			return nil, ""
		case reflect.String, reflect.Float32, reflect.Float64:
			if key && t.Kind() != reflect.String {
				// 0 and -0 are one Go map key but two JSON keys, and NaN
				// is never equal to itself.
				return nil, t.Kind().String() + where() + ": keys must not hold floats (0 and -0, NaN)"
			}
			if direct {
				flat = append(flat, flatOp{off: off, kind: t.Kind()})
			}
			if t.Kind() == reflect.String {
				return func(v reflect.Value) string { return checkText(v.String()) }, ""
			}
			return func(v reflect.Value) string { return checkFloat(v.Float()) }, ""
		case reflect.Array:
			if t.Len() > 16 {
				direct = false
			}
			ec, bad := walk(t.Elem(), path+"[]", off, false)
			if bad != "" || ec == nil {
				return nil, bad
			}
			if direct {
				for i := range t.Len() {
					walk(t.Elem(), path, off+uintptr(i)*t.Elem().Size(), true)
				}
			} else {
				inline = false
			}
			return func(v reflect.Value) string {
				for i := range v.Len() {
					if r := ec(v.Index(i)); r != "" {
						return r
					}
				}
				return ""
			}, ""
		case reflect.Struct:
			type fieldCheck struct {
				i int
				c func(reflect.Value) string
			}
			var fcs []fieldCheck
			for i := range t.NumField() {
				f := t.Field(i)
				fp := f.Name
				if path != "" {
					fp = path + "." + f.Name
				}
				if !f.IsExported() {
					return nil, "unexported field " + fp + " would not survive a durable store (JSON)"
				}
				if f.Tag.Get("json") == "-" {
					return nil, `field ` + fp + ` tagged json:"-" would not survive a durable store`
				}
				c, bad := walk(f.Type, fp, off+f.Offset, direct)
				if bad != "" {
					return nil, bad
				}
				if c != nil {
					fcs = append(fcs, fieldCheck{i, c})
				}
			}
			if len(fcs) == 0 {
				return nil, ""
			}
			return func(v reflect.Value) string {
				for _, fc := range fcs {
					if r := fc.c(v.Field(fc.i)); r != "" {
						return r
					}
				}
				return ""
			}, ""
		case reflect.Pointer, reflect.Slice, reflect.Map:
			if key {
				return nil, t.Kind().String() + where() + ": keys must be plain values (strings, numbers, structs of them)"
			}
			ti.refs = true
			if t.Kind() == reflect.Map {
				switch k := t.Key(); {
				case k.Kind() == reflect.String, k.Kind() >= reflect.Int && k.Kind() <= reflect.Uintptr:
				default:
					return nil, "map key type " + k.String() + where() + " has no faithful JSON form"
				}
				kc, bad := walk(t.Key(), path+"[key]", 0, false)
				if bad != "" {
					return nil, bad
				}
				ec, bad := walk(t.Elem(), path+"[]", 0, false)
				if bad != "" {
					return nil, bad
				}
				if kc == nil && ec == nil {
					return nil, ""
				}
				inline = false
				return func(v reflect.Value) string {
					for it := v.MapRange(); it.Next(); {
						if kc != nil {
							if r := kc(it.Key()); r != "" {
								return r
							}
						}
						if ec != nil {
							if r := ec(it.Value()); r != "" {
								return r
							}
						}
					}
					return ""
				}, ""
			}
			ec, bad := walk(t.Elem(), path+"[]", 0, false)
			if bad != "" || ec == nil {
				return nil, bad
			}
			inline = false
			if t.Kind() == reflect.Pointer {
				return func(v reflect.Value) string {
					if v.IsNil() {
						return ""
					}
					return ec(v.Elem())
				}, ""
			}
			return func(v reflect.Value) string {
				for i := range v.Len() {
					if r := ec(v.Index(i)); r != "" {
						return r
					}
				}
				return ""
			}, ""
		default: // complex, chan, func, interface, unsafe.Pointer
			what := t.Kind().String()
			if t.Kind() == reflect.Interface {
				what = "interface (" + t.String() + ")"
			}
			return nil, what + where() + " has no faithful JSON form"
		}
	}
	c, bad := walk(t, "", 0, true)
	if bad != "" {
		ti.err = bad
		return ti
	}
	if inline {
		ti.flat = flat
	} else {
		ti.check = c
	}
	return ti
}

// checkFlat runs flat ops on the value at p. It is a plain function so that
// p does not escape and the checked value can stay on the caller's stack.
func checkFlat(ops []flatOp, p unsafe.Pointer) string {
	for _, op := range ops {
		q := unsafe.Add(p, op.off)
		var r string
		switch op.kind {
		case reflect.String:
			r = checkText(*(*string)(q))
		case reflect.Float64:
			r = checkFloat(*(*float64)(q))
		case reflect.Float32:
			r = checkFloat(float64(*(*float32)(q)))
		}
		if r != "" {
			return r
		}
	}
	return ""
}

// checkText refuses what PostgreSQL text (and jsonb) cannot hold.
func checkText(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Sprintf("text %q holds a NUL byte", s)
	}
	if !utf8.ValidString(s) {
		return fmt.Sprintf("text %q is not valid UTF-8", s)
	}
	return ""
}

func checkFloat(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Sprintf("%v has no JSON form", f)
	}
	return ""
}

// deepCopy replaces, in the addressable value v, every pointer, slice and
// map with a copy of its own, so that v shares no memory with the original.
// Types that encode themselves are copied as plain values.
func deepCopy(v reflect.Value) {
	t := v.Type()
	if opaque(t) && t.Kind() == reflect.Struct {
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return
		}
		n := reflect.New(t.Elem())
		n.Elem().Set(v.Elem())
		deepCopy(n.Elem())
		v.Set(n)
	case reflect.Slice:
		if v.IsNil() {
			return
		}
		n := reflect.MakeSlice(t, v.Len(), v.Len())
		reflect.Copy(n, v)
		if hasRefs(t.Elem()) {
			for i := range n.Len() {
				deepCopy(n.Index(i))
			}
		}
		v.Set(n)
	case reflect.Map:
		if v.IsNil() {
			return
		}
		n := reflect.MakeMapWithSize(t, v.Len())
		refs := hasRefs(t.Elem())
		for it := v.MapRange(); it.Next(); {
			e := it.Value()
			if refs {
				c := reflect.New(t.Elem()).Elem()
				c.Set(e)
				deepCopy(c)
				e = c
			}
			n.SetMapIndex(it.Key(), e)
		}
		v.Set(n)
	case reflect.Array:
		if hasRefs(t.Elem()) {
			for i := range v.Len() {
				deepCopy(v.Index(i))
			}
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if hasRefs(t.Field(i).Type) {
				deepCopy(v.Field(i))
			}
		}
	}
}

// hasRefs reports whether a value of t can share memory with a copy of it.
func hasRefs(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map:
		return true
	case reflect.Array:
		return hasRefs(t.Elem())
	case reflect.Struct:
		if opaque(t) {
			return false
		}
		for i := range t.NumField() {
			if hasRefs(t.Field(i).Type) {
				return true
			}
		}
	}
	return false
}
