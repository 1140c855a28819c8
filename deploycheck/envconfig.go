// Package deploycheck checks the deploy artifacts (docker-compose.yml,
// deploy/docker, deploy/systemd, deploy/ansible, deploy/cloudwatch,
// deploy/grafana) against the code they describe, and generates README's
// "Configuration reference" from the services' envconfig structs.
//
// It reads the services' Go source with go/ast instead of importing them, so
// the root module depends on no service module.
package deploycheck

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// modulePath is the import path prefix of this repository's modules.
const modulePath = "github.com/redms/redms"

// envPrefix is the envconfig prefix every binary uses.
const envPrefix = "REDMS"

// Binary is one service binary and the variables its Config reads.
type Binary struct {
	Name string // redms-capture
	Dir  string // services/capture, relative to the repository root
	// Struct is where the root Config struct is declared (relative path).
	Struct string
	Vars   []Var
}

// Var is one environment variable of a binary.
type Var struct {
	Name     string // REDMS_NATS_URL
	Default  string
	Desc     string
	Type     string // human form of the Go type: string, duration, integer, ...
	Required bool
}

// Var returns the variable named name and whether the binary reads it.
func (b Binary) Var(name string) (Var, bool) {
	for _, v := range b.Vars {
		if v.Name == name {
			return v, true
		}
	}
	return Var{}, false
}

// Binaries lists the services under root/services that declare an envconfig
// Config struct, in name order. A service without one is left out.
func Binaries(root string) ([]Binary, error) {
	dirs, err := os.ReadDir(filepath.Join(root, "services"))
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	var out []Binary
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		b, ok, err := LoadBinary(root, filepath.Join("services", d.Name()))
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, b)
		}
	}
	return out, nil
}

// LoadBinary reads the envconfig Config struct of the service in dir
// (relative to root): the type Config of the service's main package, else
// the first type Config with envconfig tags below dir. ok is false when
// there is none.
func LoadBinary(root, dir string) (Binary, bool, error) {
	b := Binary{Name: "redms-" + filepath.Base(dir), Dir: dir}
	l := &loader{root: root, fset: token.NewFileSet(), pkgs: map[string]*pkgInfo{}}
	candidates, err := packageDirs(filepath.Join(root, dir))
	if err != nil {
		return b, false, err
	}
	// The struct main hands to envconfig.Process, with main's prefix.
	if len(candidates) > 0 && candidates[0] == filepath.Join(root, dir) {
		p, err := l.load(candidates[0])
		if err != nil {
			return b, false, err
		}
		if typ, prefix, ok := p.processCall(); ok {
			if st, found := p.types[typ]; found {
				vars, err := l.gather(p, st, strings.ToUpper(prefix))
				if err != nil {
					return b, false, fmt.Errorf("read %s %s: %w", dir, typ, err)
				}
				rel, _ := filepath.Rel(root, p.declFile[typ])
				b.Struct, b.Vars = filepath.ToSlash(rel), vars
				return b, true, nil
			}
		}
	}
	for _, pdir := range candidates {
		p, err := l.load(pdir)
		if err != nil {
			return b, false, err
		}
		st, ok := p.types["Config"]
		if !ok || !hasEnvconfigTag(st) {
			continue
		}
		vars, err := l.gather(p, st, envPrefix)
		if err != nil {
			return b, false, fmt.Errorf("read %s Config: %w", dir, err)
		}
		rel, _ := filepath.Rel(root, p.declFile["Config"])
		b.Struct, b.Vars = filepath.ToSlash(rel), vars
		return b, true, nil
	}
	return b, false, nil
}

// packageDirs lists dir and every directory below it that holds Go files,
// dir first, then by depth and name (so the main package wins).
func packageDirs(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != dir && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			pd := filepath.Dir(path)
			if len(out) == 0 || out[len(out)-1] != pd {
				out = append(out, pd)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk %s: %w", dir, err)
	}
	sort.SliceStable(out, func(i, j int) bool {
		di, dj := strings.Count(out[i], string(filepath.Separator)), strings.Count(out[j], string(filepath.Separator))
		if di != dj {
			return di < dj
		}
		return out[i] < out[j]
	})
	return out, nil
}

func hasEnvconfigTag(st *ast.StructType) bool {
	for _, f := range st.Fields.List {
		if f.Tag == nil {
			continue
		}
		tag := tagOf(f)
		if _, ok := tag.Lookup("envconfig"); ok {
			return true
		}
		if _, ok := tag.Lookup("default"); ok {
			return true
		}
	}
	return false
}

// pkgInfo is one parsed package: its struct types and imports by name.
type pkgInfo struct {
	dir      string
	types    map[string]*ast.StructType
	declFile map[string]string
	imports  map[string]string // local name → import path, per package (names agree across files in practice)
	files    []*ast.File
}

// processCall finds the first envconfig.Process(prefix, &v),
// service.ReadEnv(prefix, &v) or service.ReadConfig(prefix, &v, validate)
// call of the package and the named type v is declared with in the same
// function (var v T, v := T{} or v := &T{}).
func (p *pkgInfo) processCall() (typ, prefix string, ok bool) {
	for _, f := range p.files {
		for _, decl := range f.Decls {
			fn, isFn := decl.(*ast.FuncDecl)
			if !isFn || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				if ok {
					return false
				}
				call, isCall := n.(*ast.CallExpr)
				if !isCall || len(call.Args) < 2 {
					return true
				}
				sel, isSel := call.Fun.(*ast.SelectorExpr)
				if !isSel {
					return true
				}
				if x, isIdent := sel.X.(*ast.Ident); !isIdent || !readsEnv(p.imports[x.Name], sel.Sel.Name) {
					return true
				}
				lit, isLit := call.Args[0].(*ast.BasicLit)
				addr, isAddr := call.Args[1].(*ast.UnaryExpr)
				if !isLit || !isAddr || addr.Op != token.AND {
					return true
				}
				v, isIdent := addr.X.(*ast.Ident)
				if !isIdent {
					return true
				}
				if t := declaredType(fn.Body, v.Name); t != "" {
					prefix, _ = strconv.Unquote(lit.Value)
					typ, ok = t, true
				}
				return !ok
			})
			if ok {
				return typ, prefix, true
			}
		}
	}
	return "", "", false
}

// readsEnv reports whether the function name of the package at import path
// reads a configuration struct from the environment: envconfig.Process, or
// service.ReadEnv and service.ReadConfig (which apply the defaults tags of
// embedded Settings first, see gather).
func readsEnv(path, name string) bool {
	return path == "github.com/kelseyhightower/envconfig" && name == "Process" ||
		path == modulePath+"/pkg/service" && (name == "ReadEnv" || name == "ReadConfig")
}

// declaredType is the type name variable name is declared with in body.
func declaredType(body *ast.BlockStmt, name string) string {
	var typ string
	ast.Inspect(body, func(n ast.Node) bool {
		switch s := n.(type) {
		case *ast.ValueSpec:
			for _, id := range s.Names {
				if id.Name == name && s.Type != nil {
					if t, ok := s.Type.(*ast.Ident); ok {
						typ = t.Name
					}
				}
			}
		case *ast.AssignStmt:
			for i, lhs := range s.Lhs {
				id, ok := lhs.(*ast.Ident)
				if !ok || id.Name != name || i >= len(s.Rhs) {
					continue
				}
				rhs := s.Rhs[i]
				if u, ok := rhs.(*ast.UnaryExpr); ok && u.Op == token.AND {
					rhs = u.X
				}
				if cl, ok := rhs.(*ast.CompositeLit); ok {
					if t, ok := cl.Type.(*ast.Ident); ok {
						typ = t.Name
					}
				}
			}
		}
		return typ == ""
	})
	return typ
}

type loader struct {
	root string
	fset *token.FileSet
	pkgs map[string]*pkgInfo
}

func (l *loader) load(dir string) (*pkgInfo, error) {
	if p, ok := l.pkgs[dir]; ok {
		return p, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read package %s: %w", dir, err)
	}
	p := &pkgInfo{dir: dir, types: map[string]*ast.StructType{}, declFile: map[string]string{}, imports: map[string]string{}}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		path := filepath.Join(dir, name)
		f, err := parser.ParseFile(l.fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", path, err)
		}
		p.files = append(p.files, f)
		for _, imp := range f.Imports {
			ip, _ := strconv.Unquote(imp.Path.Value)
			local := ip[strings.LastIndex(ip, "/")+1:]
			if imp.Name != nil {
				local = imp.Name.Name
			}
			p.imports[local] = ip
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				if st, ok := ts.Type.(*ast.StructType); ok {
					p.types[ts.Name.Name] = st
					p.declFile[ts.Name.Name] = path
				}
			}
		}
	}
	l.pkgs[dir] = p
	return p, nil
}

// resolve finds the struct a field type names: a type of this package, or of
// another package of this repository. ok is false for anything else (a
// standard or third-party type, which envconfig decodes as one value).
func (l *loader) resolve(p *pkgInfo, expr ast.Expr) (*pkgInfo, *ast.StructType, bool, error) {
	if star, ok := expr.(*ast.StarExpr); ok {
		expr = star.X
	}
	switch t := expr.(type) {
	case *ast.Ident:
		st, ok := p.types[t.Name]
		return p, st, ok, nil
	case *ast.SelectorExpr:
		pkgName, ok := t.X.(*ast.Ident)
		if !ok {
			return nil, nil, false, nil
		}
		ip, ok := p.imports[pkgName.Name]
		if !ok || !strings.HasPrefix(ip, modulePath+"/") {
			return nil, nil, false, nil
		}
		dir := filepath.Join(l.root, filepath.FromSlash(strings.TrimPrefix(ip, modulePath+"/")))
		other, err := l.load(dir)
		if err != nil {
			return nil, nil, false, err
		}
		st, ok := other.types[t.Sel.Name]
		return other, st, ok, nil
	case *ast.StructType:
		return p, t, true, nil
	}
	return nil, nil, false, nil
}

// gather follows envconfig v1.4's rules: the key is the envconfig tag, else
// the field name (split at word boundaries with split_words:"true"),
// upper-cased and joined to the prefix with "_". An embedded struct adds its
// fields under the same prefix, a named struct field under its own key. A
// defaults tag on an embedded struct, `defaults:"KEY=value …"`, gives the
// embedded fields with those keys their default (service.ReadEnv sets them
// before envconfig runs).
func (l *loader) gather(p *pkgInfo, st *ast.StructType, prefix string) ([]Var, error) {
	var vars []Var
	for _, f := range st.Fields.List {
		tag := tagOf(f)
		if tag.Get("ignored") == "true" {
			continue
		}
		names := f.Names
		embedded := len(names) == 0
		if embedded {
			names = []*ast.Ident{{Name: typeName(f.Type)}}
		}
		for _, n := range names {
			if !ast.IsExported(n.Name) {
				continue
			}
			key := tag.Get("envconfig")
			if key == "" {
				key = n.Name
				if tag.Get("split_words") == "true" {
					key = splitWords(n.Name)
				}
			}
			key = strings.ToUpper(key)
			full := key
			if prefix != "" {
				full = prefix + "_" + key
			}
			if sp, sst, ok, err := l.resolve(p, f.Type); err != nil {
				return nil, err
			} else if ok {
				inner := prefix
				if !embedded || tag.Get("envconfig") != "" {
					inner = full
				}
				sub, err := l.gather(sp, sst, inner)
				if err != nil {
					return nil, err
				}
				if err := applyDefaults(sub, tag.Get("defaults"), inner); err != nil {
					return nil, fmt.Errorf("%s: %w", n.Name, err)
				}
				vars = append(vars, sub...)
				continue
			}
			vars = append(vars, Var{
				Name:     full,
				Default:  tag.Get("default"),
				Desc:     tag.Get("desc"),
				Type:     describeType(f.Type),
				Required: tag.Get("required") == "true",
			})
		}
	}
	seen := map[string]bool{}
	for _, v := range vars {
		if seen[v.Name] {
			return nil, fmt.Errorf("variable %s declared twice", v.Name)
		}
		seen[v.Name] = true
	}
	return vars, nil
}

// applyDefaults sets the defaults a defaults tag gives the variables of an
// embedded struct gathered under prefix.
func applyDefaults(vars []Var, tag, prefix string) error {
	for _, pair := range strings.Fields(tag) {
		key, value, ok := strings.Cut(pair, "=")
		if !ok {
			return fmt.Errorf("defaults %q: want KEY=value", pair)
		}
		name := key
		if prefix != "" {
			name = prefix + "_" + key
		}
		found := false
		for i := range vars {
			if vars[i].Name == name {
				vars[i].Default, found = value, true
			}
		}
		if !found {
			return fmt.Errorf("defaults name %s, which the struct does not declare", key)
		}
	}
	return nil
}

func tagOf(f *ast.Field) reflect.StructTag {
	if f.Tag == nil {
		return ""
	}
	s, err := strconv.Unquote(f.Tag.Value)
	if err != nil {
		return ""
	}
	return reflect.StructTag(s)
}

func typeName(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.StarExpr:
		return typeName(t.X)
	case *ast.Ident:
		return t.Name
	case *ast.SelectorExpr:
		return t.Sel.Name
	}
	return ""
}

// splitWords is envconfig's split_words: "MaxInflight" → "Max_Inflight",
// keeping acronyms together ("NATSURL" → "NATSURL", "S3Bucket" → "S3_Bucket").
func splitWords(name string) string {
	var words []string
	r := []rune(name)
	start := 0
	for i := 1; i < len(r); i++ {
		lowerToUpper := isLower(r[i-1]) && isUpper(r[i])
		acronymEnd := i+1 < len(r) && isUpper(r[i-1]) && isUpper(r[i]) && isLower(r[i+1])
		if lowerToUpper || acronymEnd {
			words = append(words, string(r[start:i]))
			start = i
		}
	}
	words = append(words, string(r[start:]))
	return strings.Join(words, "_")
}

func isLower(r rune) bool { return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' }
func isUpper(r rune) bool { return r >= 'A' && r <= 'Z' }

// describeType names a field's type the way an operator writes its value.
func describeType(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.StarExpr:
		return describeType(t.X)
	case *ast.Ident:
		switch t.Name {
		case "string":
			return "string"
		case "bool":
			return "bool"
		case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
			return "integer"
		case "float32", "float64":
			return "number"
		}
		return t.Name
	case *ast.SelectorExpr:
		if x, ok := t.X.(*ast.Ident); ok && x.Name == "time" && t.Sel.Name == "Duration" {
			return "duration"
		}
		return t.Sel.Name
	case *ast.ArrayType:
		return "list of " + describeType(t.Elt) + " (comma-separated)"
	case *ast.MapType:
		return "map (key:value,…)"
	}
	return "value"
}

// errNoConfig is returned when a binary the caller needs has no Config.
var errNoConfig = errors.New("no envconfig Config struct")

// MustFind returns the binary named name from bins.
func MustFind(bins []Binary, name string) (Binary, error) {
	for _, b := range bins {
		if b.Name == name {
			return b, nil
		}
	}
	return Binary{}, fmt.Errorf("%s: %w (expected type Config with envconfig tags in services/%s)", name, errNoConfig, strings.TrimPrefix(name, "redms-"))
}
