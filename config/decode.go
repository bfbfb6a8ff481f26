package config

import (
	"encoding"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// YAML short tags of the scalar kinds the decoder distinguishes.
const (
	nullTag  = "!!null"
	boolTag  = "!!bool"
	strTag   = "!!str"
	intTag   = "!!int"
	floatTag = "!!float"
	mergeTag = "!!merge"
)

// maxAliasNodes bounds how many nodes may be decoded through YAML aliases,
// so that a small file of nested aliases cannot expand into billions of
// values.
const maxAliasNodes = 10000

var (
	unmarshalerType     = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	addrType            = reflect.TypeFor[netip.Addr]()
	prefixType          = reflect.TypeFor[netip.Prefix]()
)

// decoder fills Go values from a yaml.Node tree with KnownFields semantics:
// an unknown or repeated key and a value of the wrong type are errors. It
// keeps going after an error so that every problem is reported, and it
// records the line of every key and list item it sees, by path
// ("regions[0].health.interval"), for the checks that follow.
type decoder struct {
	errs       *errorList
	pos        *positions
	aliasDepth int
	aliasNodes int
	useLine    int // while aliasDepth > 0: the line of the outermost alias
	aborted    bool
}

// line is where to report n: its own line, or the line where the alias
// that brought it in was used.
func (d *decoder) line(n *yaml.Node) int {
	if d.aliasDepth > 0 {
		return d.useLine
	}
	return n.Line
}

// within decodes through an alias or merge key used at line.
func (d *decoder) within(line int, decode func()) {
	if d.aliasDepth == 0 {
		d.useLine = line
	}
	d.aliasDepth++
	decode()
	d.aliasDepth--
}

// fail reports a value at path that could not be decoded.
func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.pos.failed[path] = true
	d.errs.add(d.line(n), "%s: "+format, append([]any{where(path)}, args...)...)
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if d.aborted {
		return
	}
	if d.aliasDepth > 0 {
		d.aliasNodes++ // values decoded a second time or more
		if d.aliasNodes > maxAliasNodes {
			d.errs.add(d.line(n), "aliases expand to more than %d values", maxAliasNodes)
			d.aborted = true
			return
		}
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.fail(n, path, "unknown alias")
			return
		}
		d.within(n.Line, func() { d.decode(n.Alias, v, path) })
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == nullTag {
		return // null leaves the zero value: the key counts as not set
	}
	t := v.Type()
	switch {
	case t == addrType:
		d.decodeText(n, v, path, "an IP address")
		return
	case t == prefixType:
		d.decodeText(n, v, path, "an IP prefix")
		return
	case reflect.PointerTo(t).Implements(unmarshalerType):
		u := v.Addr().Interface().(yaml.Unmarshaler)
		if err := u.UnmarshalYAML(n); err != nil {
			d.fail(n, path, "%v", err)
		}
		return
	case reflect.PointerTo(t).Implements(textUnmarshalerType):
		d.decodeText(n, v, path, "a value")
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		d.decodeSlice(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.wrongType(n, path, "a string")
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != boolTag || n.Decode(&b) != nil {
			d.wrongType(n, path, "true or false")
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != intTag {
			d.wrongType(n, path, "an integer")
			return
		}
		if n.Decode(&i) != nil || v.OverflowInt(i) {
			d.fail(n, path, "integer %s is out of range", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Float32, reflect.Float64:
		var f float64
		tag := n.ShortTag()
		if n.Kind != yaml.ScalarNode || (tag != intTag && tag != floatTag) || n.Decode(&f) != nil {
			d.wrongType(n, path, "a number")
			return
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			d.fail(n, path, "%s is not a finite number", n.Value)
			return
		}
		v.SetFloat(f)
	default:
		d.fail(n, path, "cannot decode into %s", t)
	}
}

func (d *decoder) wrongType(n *yaml.Node, path, want string) {
	d.fail(n, path, "expected %s, got %s", want, describe(n))
}

// decodeText decodes a scalar through encoding.TextUnmarshaler.
func (d *decoder) decodeText(n *yaml.Node, v reflect.Value, path, want string) {
	if n.Kind != yaml.ScalarNode {
		d.wrongType(n, path, want)
		return
	}
	u := v.Addr().Interface().(encoding.TextUnmarshaler)
	if err := u.UnmarshalText([]byte(n.Value)); err != nil {
		d.fail(n, path, "invalid %s %q", strings.TrimPrefix(strings.TrimPrefix(want, "an "), "a "), n.Value)
	}
}

// pair is one key and value of a mapping, merge keys resolved.
type pair struct {
	key, value *yaml.Node
	mergedAt   int // line of the merge key that brought the pair in; 0 if written
}

// pairs lists the entries of mapping n. Keys brought in by a merge key
// ("<<: *base") come first and give way to keys written in n itself.
func (d *decoder) pairs(n *yaml.Node, path string, mergedAt, depth int) []pair {
	var out []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == mergeTag {
			at := mergedAt
			if at == 0 {
				at = d.line(k)
			}
			out = append(out, d.mergePairs(val, path, at, depth)...)
			continue
		}
		out = append(out, pair{key: k, value: val, mergedAt: mergedAt})
	}
	return out
}

func (d *decoder) mergePairs(val *yaml.Node, path string, at, depth int) []pair {
	if depth > 10 {
		d.fail(val, path, "merge keys nested too deeply")
		return nil
	}
	target := val
	if target.Kind == yaml.AliasNode && target.Alias != nil {
		target = target.Alias
	}
	switch target.Kind {
	case yaml.MappingNode:
		d.aliasNodes += len(target.Content) / 2
		if d.aliasNodes > maxAliasNodes {
			if !d.aborted {
				d.errs.add(d.line(val), "aliases expand to more than %d values", maxAliasNodes)
			}
			d.aborted = true
			return nil
		}
		return d.pairs(target, path, at, depth+1)
	case yaml.SequenceNode:
		var out []pair
		for _, item := range target.Content {
			out = append(out, d.mergePairs(item, path, at, depth+1)...)
		}
		return out
	default:
		d.fail(val, path, "a merge key needs a mapping, got %s", describe(val))
		return nil
	}
}

// keyText returns the text of a mapping key, or false after reporting a key
// that is not a plain value.
func (d *decoder) keyText(k *yaml.Node, path string) (string, bool) {
	if k.Kind == yaml.AliasNode && k.Alias != nil {
		k = k.Alias
	}
	if k.Kind != yaml.ScalarNode {
		d.fail(k, path, "a key must be a plain value, got %s", describe(k))
		return "", false
	}
	return k.Value, true
}

// entries checks that n is a mapping and returns its entries with repeated
// keys reported and dropped. A key written in the mapping wins over the same
// key brought in by a merge.
func (d *decoder) entries(n *yaml.Node, path string) ([]string, []pair, bool) {
	if n.Kind != yaml.MappingNode {
		d.wrongType(n, path, "a mapping")
		return nil, nil, false
	}
	all := d.pairs(n, path, 0, 0)
	names := make([]string, len(all))
	valid := make([]bool, len(all))
	first := map[string]*yaml.Node{} // the first written occurrence of each key
	for i, p := range all {
		names[i], valid[i] = d.keyText(p.key, path)
		if !valid[i] || p.mergedAt != 0 {
			continue
		}
		if f, dup := first[names[i]]; dup {
			d.errs.add(d.line(p.key), "%s: duplicate key %q (first at line %d)", where(path), names[i], d.line(f))
			continue
		}
		first[names[i]] = p.key
	}
	var keys []string
	var out []pair
	seen := map[string]bool{}
	for i, p := range all {
		key := names[i]
		if !valid[i] || seen[key] {
			continue
		}
		if f, written := first[key]; written && f != p.key {
			continue // merged and overridden, or a repeat reported above
		}
		seen[key] = true
		keys = append(keys, key)
		out = append(out, p)
	}
	return keys, out, true
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	keys, entries, ok := d.entries(n, path)
	if !ok {
		return
	}
	fields := yamlFields(v.Type())
	for i, p := range entries {
		idx, known := fields[keys[i]]
		if !known {
			in := ""
			if path != "" {
				in = " in " + path
			}
			d.errs.add(d.keyLine(p), "unknown key %q%s%s", keys[i], in, suggest(keys[i], fields))
			continue
		}
		fp := childPath(path, keys[i])
		d.pos.lines[fp] = d.keyLine(p)
		d.decodeValue(p, v.Field(idx), fp)
	}
	if sf, ok := v.Type().FieldByName("Line"); ok && sf.Tag.Get("yaml") == "-" && sf.Type.Kind() == reflect.Int {
		v.FieldByIndex(sf.Index).SetInt(int64(d.line(n)))
	}
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.wrongType(n, path, "a list")
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		ip := itemPath(path, i)
		d.pos.lines[ip] = d.line(item)
		d.decode(item, s.Index(i), ip)
	}
	v.Set(s)
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	keys, entries, ok := d.entries(n, path)
	if !ok {
		return
	}
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.fail(n, path, "cannot decode into %s", t)
		return
	}
	m := reflect.MakeMapWithSize(t, len(entries))
	for i, p := range entries {
		fp := childPath(path, keys[i])
		d.pos.lines[fp] = d.keyLine(p)
		elem := reflect.New(t.Elem()).Elem()
		d.decodeValue(p, elem, fp)
		m.SetMapIndex(reflect.ValueOf(keys[i]).Convert(t.Key()), elem)
	}
	v.Set(m)
}

// keyLine is where to report the key of p.
func (d *decoder) keyLine(p pair) int {
	if p.mergedAt != 0 {
		return p.mergedAt
	}
	return d.line(p.key)
}

// decodeValue decodes the value of p, through its merge key if it has one.
func (d *decoder) decodeValue(p pair, v reflect.Value, path string) {
	if p.mergedAt != 0 {
		d.within(p.mergedAt, func() { d.decode(p.value, v, path) })
		return
	}
	d.decode(p.value, v, path)
}

// yamlFields maps the yaml names of t's fields to their index; fields
// tagged "-" are not part of the file.
func yamlFields(t reflect.Type) map[string]int {
	out := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = i
	}
	return out
}

// describe names the kind of value n holds, for messages.
func describe(n *yaml.Node) string {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case nullTag:
			return "null"
		case strTag:
			return fmt.Sprintf("the string %q", n.Value)
		case intTag:
			return "the integer " + n.Value
		case floatTag:
			return "the number " + n.Value
		case boolTag:
			return "the boolean " + n.Value
		default:
			return fmt.Sprintf("%q (%s)", n.Value, n.ShortTag())
		}
	default:
		return "nothing"
	}
}

// suggest proposes the known key closest to an unknown one, when it is
// close enough to be a likely typo.
func suggest(key string, fields map[string]int) string {
	best, bestDist := "", min(2, len(key)/3)+1
	for name := range fields {
		if dist := editDistance(strings.ToLower(key), name); dist < bestDist || (dist == bestDist && name < best) {
			best, bestDist = name, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
