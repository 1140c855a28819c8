package proc

import (
	"bytes"
	"io"
	"os"
	"strings"
	"sync"
)

// Log is a process's output: kept in memory for the test to read while the
// process writes, and copied to Tee when set. It is safe for concurrent use.
type Log struct {
	Tee io.Writer

	mu sync.Mutex
	b  bytes.Buffer
}

var _ io.Writer = (*Log)(nil)

// Write keeps p and copies it to Tee.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(p)
	if l.Tee != nil {
		_, _ = l.Tee.Write(p)
	}
	return len(p), nil
}

// String is everything written so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Tail is the last n lines of text, each cut to 600 bytes.
func Tail(text string, n int) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		lines[i] = cut(l)
	}
	return strings.Join(lines, "\n")
}

// Grep is at most n lines of text that contain any of words, each cut to
// 600 bytes.
func Grep(text string, n int, words ...string) []string {
	var out []string
	for l := range strings.Lines(text) {
		if len(out) == n {
			break
		}
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, cut(strings.TrimRight(l, "\n")))
				break
			}
		}
	}
	return out
}

// ReadFile is the file's text, or a note saying why there is none.
func ReadFile(path string) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return string(raw)
}

func cut(l string) string {
	if len(l) > 600 {
		return l[:600] + "…"
	}
	return l
}
