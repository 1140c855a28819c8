package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseMetrics reads the Prometheus text exposition format (comments and
// blank lines skipped; timestamps ignored).
func parseMetrics(r io.Reader) ([]sample, error) {
	var out []sample
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	return out, nil
}

func parseSample(line string) (sample, error) {
	s := sample{labels: map[string]string{}}
	rest := line
	if i := strings.IndexAny(line, "{ "); i < 0 {
		return s, fmt.Errorf("parse metric line %q: no value", line)
	} else {
		s.name, rest = line[:i], line[i:]
	}
	if strings.HasPrefix(rest, "{") {
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, " ,")
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.Index(rest, `="`)
			if eq < 0 {
				return s, fmt.Errorf("parse metric line %q: bad label", line)
			}
			key := rest[:eq]
			rest = rest[eq+2:]
			var val strings.Builder
			i := 0
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
					switch rest[i] {
					case 'n':
						val.WriteByte('\n')
					default:
						val.WriteByte(rest[i])
					}
					continue
				}
				val.WriteByte(rest[i])
			}
			if i >= len(rest) {
				return s, fmt.Errorf("parse metric line %q: unterminated label value", line)
			}
			s.labels[key] = val.String()
			rest = rest[i+1:]
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return s, fmt.Errorf("parse metric line %q: no value", line)
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, fmt.Errorf("parse metric line %q: %w", line, err)
	}
	s.value = v
	return s, nil
}

// scrape fetches and parses one /metrics endpoint.
func scrape(ctx context.Context, client *http.Client, url string) ([]sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: status %s", url, resp.Status)
	}
	return parseMetrics(resp.Body)
}

// sum adds every sample named name.
func sum(samples []sample, name string) float64 {
	var t float64
	for _, s := range samples {
		if s.name == name {
			t += s.value
		}
	}
	return t
}

// maxOf is the largest sample named name, 0 when there is none.
func maxOf(samples []sample, name string) float64 {
	var m float64
	for _, s := range samples {
		if s.name == name && s.value > m {
			m = s.value
		}
	}
	return m
}

// maxByLabel takes the largest value per label value of samples named name
// (two replicas may both report a table during a hand-over) and sums them.
func maxByLabel(samples []sample, name, label string) float64 {
	per := map[string]float64{}
	for _, s := range samples {
		if s.name != name {
			continue
		}
		k := s.labels[label]
		if v, ok := per[k]; !ok || s.value > v {
			per[k] = s.value
		}
	}
	var t float64
	for _, v := range per {
		t += v
	}
	return t
}

// quantile estimates the q-quantile of the histogram name from its
// cumulative _bucket samples (summed across label sets with the same le), by
// linear interpolation inside the bucket, as PromQL's histogram_quantile
// does. ok is false when the histogram has no observations.
func quantile(samples []sample, name string, q float64) (v float64, ok bool) {
	counts := map[float64]float64{}
	for _, s := range samples {
		if s.name != name+"_bucket" {
			continue
		}
		le, err := strconv.ParseFloat(s.labels["le"], 64)
		if err != nil {
			continue
		}
		counts[le] += s.value
	}
	bounds := make([]float64, 0, len(counts))
	for le := range counts {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	if len(bounds) == 0 {
		return 0, false
	}
	total := counts[bounds[len(bounds)-1]]
	if total == 0 {
		return 0, false
	}
	rank := q * total
	prevBound, prevCount := 0.0, 0.0
	for _, b := range bounds {
		c := counts[b]
		if c >= rank {
			if math.IsInf(b, 1) {
				// Above the highest finite bucket: its bound is the best estimate.
				return prevBound, true
			}
			if c == prevCount {
				return b, true
			}
			return prevBound + (b-prevBound)*(rank-prevCount)/(c-prevCount), true
		}
		prevBound, prevCount = b, c
	}
	return prevBound, true
}
