package deploycheck

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// ReferenceHeading starts README's generated section, which runs to the end
// of the file.
const ReferenceHeading = "## Configuration reference"

// RenderReference renders README's configuration reference section for bins.
func RenderReference(bins []Binary) []byte {
	var b bytes.Buffer
	b.WriteString(ReferenceHeading + "\n\n")
	b.WriteString("<!-- Generated from the envconfig tags of each binary's Config struct by\n" +
		"     `cd deploycheck && GOWORK=off go test -run TestConfigReference -update`.\n" +
		"     Edit the tags, not this section; deploycheck fails while they disagree. -->\n\n")
	b.WriteString("Every binary reads its configuration once at start from `REDMS_*`\n" +
		"environment variables (envconfig). Durations are Go durations (`500ms`, `20s`,\n" +
		"`2m`); an empty default means unset. Under systemd they come from\n" +
		"`/etc/redms/*.env` (`deploy/systemd`), under Compose from `docker-compose.yml`.\n" +
		"The settings the services share (NATS, stream, metrics, logging, shutdown,\n" +
		"Sentry, pprof) are declared once, in `pkg/service/settings.go`, and the\n" +
		"warehouse settings redms-loader and redms-verify share (URL, dialect, schemas,\n" +
		"type mapping) in `pkg/typemap/settings.go`.\n")
	for _, bin := range bins {
		fmt.Fprintf(&b, "\n### %s\n\nDeclared in `%s`.\n\n", bin.Name, bin.Struct)
		b.WriteString("| variable | default | type | meaning |\n|---|---|---|---|\n")
		for _, v := range bin.Vars {
			def := "—"
			if v.Default != "" {
				def = "`" + strings.ReplaceAll(v.Default, "|", `\|`) + "`"
			}
			if v.Required {
				def = "required"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", v.Name, def, v.Type, cell(v.Desc))
		}
	}
	return b.Bytes()
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "\n", " ")
	if s == "" {
		return "—"
	}
	return s
}

// SplitReadme returns README's text before the reference section and the
// section itself (heading to end of file). The section must be the last one.
func SplitReadme(readme []byte) (before, section []byte, err error) {
	i := bytes.Index(readme, []byte("\n"+ReferenceHeading+"\n"))
	if i < 0 {
		return readme, nil, errors.New("README has no " + ReferenceHeading + " section")
	}
	return readme[:i+1], readme[i+1:], nil
}

// UpdateReadme returns readme with its reference section replaced by (or,
// when missing, extended with) section.
func UpdateReadme(readme, section []byte) []byte {
	before, _, err := SplitReadme(readme)
	if err != nil {
		before = bytes.TrimRight(readme, "\n")
		before = append(before, '\n')
	}
	out := append([]byte{}, before...)
	if !bytes.HasSuffix(out, []byte("\n\n")) {
		out = append(out, '\n')
	}
	return append(out, section...)
}
