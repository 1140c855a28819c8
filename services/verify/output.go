package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/redms/redms/services/verify/internal/compare"
)

// writeText writes the report for people: one line per table, then each
// difference.
func writeText(w io.Writer, rep report) error {
	if len(rep.Repairs) > 0 {
		fmt.Fprintln(w, "Repaired (the first pass's differences, snapshotted again, then compared again):")
		for _, r := range rep.Repairs {
			what := fmt.Sprintf("%d key ranges", r.Ranges)
			if r.Whole {
				what = "the whole table"
			}
			fmt.Fprintf(w, "  %s: %d differences, snapshot %s of %s (%d rows), applied at %s\n", r.Table, r.Differences, r.Snapshot, what, r.Rows, r.Applied)
		}
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tSTATUS\tSOURCE ROWS\tWAREHOUSE ROWS\tMISSING\tEXTRA\tCHANGED\tCONFIRMED\tSECONDS")
	for _, t := range rep.Tables {
		confirmed := "yes"
		switch {
		case t.Status != compare.Different:
			confirmed = "-" // nothing to confirm
		case !t.Confirmed:
			confirmed = "no"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%.1f\n", t.Table, t.Status, t.SourceRows, t.WarehouseRows, t.Missing, t.Extra, t.Changed, confirmed, t.Seconds)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, t := range rep.Tables {
		if t.Error != "" {
			fmt.Fprintf(w, "\n%s: could not compare: %s\n", t.Table, t.Error)
		}
		if t.TargetMissing {
			fmt.Fprintf(w, "\n%s: the warehouse has no such table\n", t.Table)
		}
		if len(t.Diffs) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s (source at %s, applied %s):\n", t.Table, t.SourceLSN, or(t.Applied, "unknown"))
		for _, d := range t.Diffs {
			line := fmt.Sprintf("  %-8s (%s)", d.Kind, d.KeyString(t.Keys))
			if d.Kind == compare.Changed {
				for _, c := range d.Columns {
					line += fmt.Sprintf("\n             %s: source %s, warehouse %s", c, show(d.Source[c]), show(d.Warehouse[c]))
				}
			}
			if d.Count > 1 {
				line += fmt.Sprintf(" ×%d", d.Count)
			}
			fmt.Fprintln(w, line)
		}
		if t.Unsettled > 0 {
			fmt.Fprintf(w, "  (%d rows changed in the source during every confirmation read: in flight, not counted)\n", t.Unsettled)
		}
		if n := t.Differences(); n > len(t.Diffs) {
			fmt.Fprintf(w, "  … %d more\n", n-len(t.Diffs))
		}
	}
	return nil
}

func show(v *string) string {
	if v == nil {
		return "NULL"
	}
	return fmt.Sprintf("%q", *v)
}

func or(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

func writeJSON(w io.Writer, rep report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// progress draws a bar on a terminal, nothing elsewhere.
func progress(f *os.File) func(table string, done, total int) {
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return func(table string, done, total int) {
		const width = 30
		n := width * done / max(total, 1)
		fmt.Fprintf(f, "\r[%s%s] %d/%d %-40.40s", strings.Repeat("#", n), strings.Repeat(" ", width-n), done, total, table)
		if done == total {
			fmt.Fprint(f, "\r\033[K")
		}
	}
}
