package deploycheck

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// metricName matches a redms metric name in any text (a PromQL expression, a
// regexp, a Go string).
var metricName = regexp.MustCompile(`redms_[a-z0-9_]*[a-z0-9]`)

// MetricNames returns the names used in text, in order of appearance.
func MetricNames(text string) []string {
	return metricName.FindAllString(text, -1)
}

// ExportedMetrics returns every redms_* metric name the Go sources under the
// given directories (relative to root) declare: string constants and
// literals that are a whole metric name, prometheus *Opts literals built from
// Namespace/Subsystem/Name, and prometheus.BuildFQName calls. Test files and
// the skipped directories are not read.
func ExportedMetrics(root string, dirs []string, skip ...string) (map[string]bool, error) {
	names := map[string]bool{}
	skipped := map[string]bool{}
	for _, s := range skip {
		skipped[filepath.Join(root, s)] = true
	}
	for _, d := range dirs {
		base := filepath.Join(root, d)
		err := filepath.WalkDir(base, func(path string, e os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() {
				if skipped[path] || e.Name() == "testdata" {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			return metricsInFile(path, names)
		})
		if err != nil {
			return nil, fmt.Errorf("scan %s for metric names: %w", d, err)
		}
	}
	return names, nil
}

var wholeName = regexp.MustCompile(`^redms_[a-z0-9_]*[a-z0-9]$`)

func metricsInFile(path string, names map[string]bool) error {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	consts := map[string]string{}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if i < len(vs.Values) {
					if s, ok := stringValue(vs.Values[i], consts); ok {
						consts[n.Name] = s
					}
				}
			}
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.BasicLit, *ast.BinaryExpr:
			if s, ok := stringValue(x.(ast.Expr), consts); ok && wholeName.MatchString(s) {
				names[s] = true
			}
		case *ast.CompositeLit:
			parts := map[string]string{}
			for _, el := range x.Elts {
				kv, ok := el.(*ast.KeyValueExpr)
				if !ok {
					continue
				}
				k, ok := kv.Key.(*ast.Ident)
				if !ok {
					continue
				}
				if s, ok := stringValue(kv.Value, consts); ok {
					parts[k.Name] = s
				}
			}
			if parts["Name"] != "" {
				names[join(parts["Namespace"], parts["Subsystem"], parts["Name"])] = true
			}
		case *ast.CallExpr:
			if sel, ok := x.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "BuildFQName" && len(x.Args) == 3 {
				var p [3]string
				for i, a := range x.Args {
					p[i], _ = stringValue(a, consts)
				}
				names[join(p[0], p[1], p[2])] = true
			}
		}
		return true
	})
	return nil
}

func join(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "_")
}

// stringValue evaluates a constant string expression: literals, constants of
// the same file, and + of those.
func stringValue(e ast.Expr, consts map[string]string) (string, bool) {
	switch x := e.(type) {
	case *ast.BasicLit:
		if x.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(x.Value)
		return s, err == nil
	case *ast.Ident:
		s, ok := consts[x.Name]
		return s, ok
	case *ast.ParenExpr:
		return stringValue(x.X, consts)
	case *ast.BinaryExpr:
		if x.Op != token.ADD {
			return "", false
		}
		l, ok1 := stringValue(x.X, consts)
		r, ok2 := stringValue(x.Y, consts)
		return l + r, ok1 && ok2
	}
	return "", false
}

// BaseMetric strips the suffixes Prometheus adds to a histogram's or
// summary's series.
func BaseMetric(name string) []string {
	out := []string{name}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if strings.HasSuffix(name, suf) {
			out = append(out, strings.TrimSuffix(name, suf))
		}
	}
	return out
}

// Exported reports whether name (or the metric it is a series of) is in names.
func Exported(names map[string]bool, name string) bool {
	for _, n := range BaseMetric(name) {
		if names[n] {
			return true
		}
	}
	return false
}
