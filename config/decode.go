package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Load reads, decodes and validates the config file at path. Relative file
// paths in it are resolved against the file's directory. The error is a
// *ProblemsError listing every problem when the file could be read.
func Load(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return Parse(data, filepath.Dir(abs))
}

// Parse decodes data strictly (unknown keys are errors), applies defaults,
// resolves relative file paths against dir (no change when dir is empty) and
// validates the result. Any problem, of YAML syntax, shape or meaning, is
// reported in one *ProblemsError; the returned Config is nil then.
func Parse(data []byte, dir string) (*Config, error) {
	root, err := parseDocument(data)
	if err != nil {
		return nil, &ProblemsError{Problems: []Problem{syntaxProblem(err)}}
	}
	cfg := Default()
	d := newDecoder(root)
	if root != nil {
		d.decode(root, reflect.ValueOf(cfg).Elem(), "")
	}
	if d.budget < 0 {
		return nil, &ProblemsError{Problems: []Problem{exhausted}}
	}
	cfg.finish(dir)
	probs := d.problems
	for _, p := range cfg.validate() {
		if !d.repeats(p) {
			probs = append(probs, p)
		}
	}
	if len(probs) > 0 {
		return nil, &ProblemsError{Problems: probs}
	}
	return cfg, nil
}

// parseDocument parses the one YAML document in data; nil for an empty file.
func parseDocument(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, err
	default:
		return nil, fmt.Errorf("yaml: line %d: only one YAML document is allowed", extra.Line)
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return doc.Content[0], nil
	}
	return nil, nil
}

var syntaxLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxProblem turns a yaml.v3 parser error into "line N: message".
func syntaxProblem(err error) Problem {
	msg := err.Error()
	if m := syntaxLine.FindStringSubmatch(msg); m != nil {
		return Problem{Path: "line " + m[1], Message: m[2]}
	}
	return Problem{Message: strings.TrimPrefix(msg, "yaml: ")}
}

// decoder is a strict YAML-node-to-struct decoder that reports each problem
// with its YAML path and keeps going, so that one run shows every problem.
// It decodes over a value that already holds the defaults: a key that is
// absent (or null) keeps its default, a key that is present replaces it.
// That is why an explicit 0 (weight: 0, exploration: 0) is kept as written.
type decoder struct {
	problems []Problem
	failed   []string            // paths whose value could not be decoded
	merging  map[*yaml.Node]bool // mappings being merged, to refuse cycles
	// budget bounds the nodes visited, aliases expanded, so that a small
	// file of nested aliases (a "billion laughs") cannot take forever.
	budget int
}

// newDecoder returns a decoder whose budget is ample for root's document
// read as written, aliases and all, but not for exponential expansion.
func newDecoder(root *yaml.Node) *decoder {
	return &decoder{budget: 10*countNodes(root) + 10000}
}

// countNodes counts the nodes of the tree without following aliases.
func countNodes(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	c := 1
	for _, k := range n.Content {
		c += countNodes(k)
	}
	return c
}

// tooBig spends one step of the budget and reports whether it is spent.
func (d *decoder) tooBig() bool {
	d.budget--
	return d.budget < 0
}

// exhausted is the one problem reported once the budget is spent.
var exhausted = Problem{Message: "document too large once aliases are expanded"}

func (d *decoder) fail(path, format string, args ...any) {
	d.problems = append(d.problems, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// bad reports a value at path that cannot be decoded; validation problems
// at or under that path would only repeat it, and are dropped.
func (d *decoder) bad(path, format string, args ...any) {
	d.fail(path, format, args...)
	d.failed = append(d.failed, path)
}

// repeats reports whether p is at or under a path that failed to decode.
func (d *decoder) repeats(p Problem) bool {
	for _, f := range d.failed {
		if p.Path == f || strings.HasPrefix(p.Path, f+".") || strings.HasPrefix(p.Path, f+"[") {
			return true
		}
	}
	return false
}

var (
	durationType   = reflect.TypeOf(Duration(0))
	channelRefType = reflect.TypeOf(ChannelRef{})
)

// elemDefaults builds a new slice element holding its defaults.
var elemDefaults = map[reflect.Type]func() reflect.Value{
	reflect.TypeOf(Merchant{}): func() reflect.Value { return reflect.ValueOf(defaultMerchant()) },
	reflect.TypeOf(Channel{}):  func() reflect.Value { return reflect.ValueOf(defaultChannel()) },
	channelRefType:             func() reflect.Value { return reflect.ValueOf(ChannelRef{Weight: 1}) },
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if d.tooBig() {
		return
	}
	// Following aliases cannot loop: every step descends the Go type, and
	// the config types are not recursive.
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // absent: keep the default
	}
	switch {
	case v.Type() == durationType:
		var dur Duration
		if err := dur.UnmarshalYAML(n); err != nil {
			d.bad(path, "%s", err.Error())
			return
		}
		v.Set(reflect.ValueOf(dur))
		return
	case v.Type() == channelRefType && n.Kind != yaml.MappingNode:
		var ref ChannelRef
		if err := ref.UnmarshalYAML(n); err != nil {
			d.bad(path, "%s", err.Error())
			return
		}
		v.Set(reflect.ValueOf(ref))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		d.decodeSlice(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.bad(path, "want a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			d.bad(path, "want true or false, got %s", describe(n))
			return
		}
		_ = n.Decode(&b) // tag checked above
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil || v.OverflowInt(i) {
			d.bad(path, "want an integer, got %s", describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Uint32:
		var u uint64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&u) != nil || v.OverflowUint(u) {
			d.bad(path, "want a non-negative integer, got %s", describe(n))
			return
		}
		v.SetUint(u)
	case reflect.Float64:
		var f float64
		tag := n.ShortTag()
		if n.Kind != yaml.ScalarNode || (tag != "!!int" && tag != "!!float") || n.Decode(&f) != nil {
			d.bad(path, "want a number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	default:
		// Unreachable for the config types; a new field kind needs a case.
		d.bad(path, "cannot decode into %s", v.Type())
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.bad(path, "want a mapping, got %s", describe(n))
		return
	}
	fields := yamlFields(v.Type())
	// Merge keys first: the mapping's own keys override merged ones,
	// wherever the "<<" stands.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if isMerge(n.Content[i]) {
			d.merge(n.Content[i+1], v, path)
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if isMerge(k) {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.fail(path, "line %d: keys must be plain strings", k.Line)
			continue
		}
		kp := join(path, k.Value)
		if line, dup := seen[k.Value]; dup {
			d.fail(kp, "duplicate key (first at line %d)", line)
			continue
		}
		seen[k.Value] = k.Line
		idx, ok := fields[k.Value]
		if !ok {
			d.fail(kp, "unknown key")
			continue
		}
		d.decode(val, v.Field(idx), kp)
	}
}

func isMerge(k *yaml.Node) bool { return k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" }

// merge applies a YAML merge key (<<: *anchor, or a list of them).
func (d *decoder) merge(val *yaml.Node, v reflect.Value, path string) {
	for val.Kind == yaml.AliasNode {
		val = val.Alias
	}
	if d.tooBig() {
		return
	}
	if d.merging[val] {
		d.fail(path, "line %d: merge key refers to its own mapping", val.Line)
		return
	}
	if d.merging == nil {
		d.merging = map[*yaml.Node]bool{}
	}
	d.merging[val] = true
	defer delete(d.merging, val)
	if val.Kind == yaml.SequenceNode {
		// Earlier mappings in the list win: decode them last.
		for i := len(val.Content) - 1; i >= 0; i-- {
			d.merge(val.Content[i], v, path)
		}
		return
	}
	d.decodeStruct(val, v, path)
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.bad(path, "want a list, got %s", describe(n))
		return
	}
	et := v.Type().Elem()
	out := reflect.MakeSlice(v.Type(), 0, len(n.Content))
	for i, item := range n.Content {
		e := reflect.New(et).Elem()
		if mk, ok := elemDefaults[et]; ok {
			e.Set(mk())
		}
		d.decode(item, e, fmt.Sprintf("%s[%d]", path, i))
		out = reflect.Append(out, e)
	}
	v.Set(out)
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.bad(path, "want a mapping, got %s", describe(n))
		return
	}
	out := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.fail(path, "line %d: keys must be plain strings", k.Line)
			continue
		}
		kp := join(path, k.Value)
		if out.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
			d.fail(kp, "duplicate key")
			continue
		}
		e := reflect.New(v.Type().Elem()).Elem()
		d.decode(val, e, kp)
		out.SetMapIndex(reflect.ValueOf(k.Value), e)
	}
	v.Set(out)
}

// yamlFields maps yaml keys to field indexes.
func yamlFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			m[name] = i
		}
	}
	return m
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// describe names what a node holds, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return strconv.Quote(n.Value)
}

// UnmarshalYAML reads a duration written as Go writes them: "300s", "2m",
// "1h30m", "250ms". A bare number is refused, since its unit would be a
// guess (a bare 0 is accepted: it has no unit to guess).
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a duration such as \"300s\", got %s", describe(n))
	}
	switch tag := n.ShortTag(); {
	case tag == "!!int" || tag == "!!float":
		if f, err := strconv.ParseFloat(n.Value, 64); err == nil && f == 0 {
			*d = 0
			return nil
		}
		return fmt.Errorf("duration %s needs a unit, e.g. \"%ss\" or \"%sms\"", n.Value, n.Value, n.Value)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("want a duration such as \"300s\", \"2m\" or \"1h30m\", got %s", describe(n))
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes d the way UnmarshalYAML reads it.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// String formats d like time.Duration ("5m0s").
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML reads a bare channel id (weight 1, priority 0) or a mapping
// {id, weight, priority} (weight defaults to 1). Unknown keys are errors.
// Parse reports such problems with their full YAML path; this method is for
// decoding a ChannelRef on its own.
func (r *ChannelRef) UnmarshalYAML(n *yaml.Node) error {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" || n.Value == "" {
			return fmt.Errorf("want a channel id or {id, weight, priority}, got nothing")
		}
		*r = ChannelRef{ID: n.Value, Weight: 1}
		return nil
	case yaml.MappingNode:
		ref := ChannelRef{Weight: 1}
		d := newDecoder(n)
		d.decodeStruct(n, reflect.ValueOf(&ref).Elem(), "")
		if d.budget < 0 {
			return errors.New(exhausted.Message)
		}
		if len(d.problems) > 0 {
			return errors.New(d.problems[0].String())
		}
		*r = ref
		return nil
	}
	return fmt.Errorf("want a channel id or {id, weight, priority}, got %s", describe(n))
}
