// Package scrape reads a /metrics endpoint (the Prometheus text format,
// parsed by prometheus/common/expfmt) into flat samples, and aggregates
// them the way the demo's progress line and the tests need. It has no
// testing import: redms-devstack uses it.
package scrape

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Sample is one series' value: a histogram is its _bucket (label le),
// _sum and _count series, as in the text format.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Series is the sample as the text format writes it, labels sorted:
// name{a="x",b="y"}.
func (s Sample) Series() string {
	if len(s.Labels) == 0 {
		return s.Name
	}
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(s.Name + "{")
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + strconv.Quote(s.Labels[k]))
	}
	b.WriteByte('}')
	return b.String()
}

// Samples are one scrape.
type Samples []Sample

// Parse reads the Prometheus text exposition format.
func Parse(r io.Reader) (Samples, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	names := make([]string, 0, len(families))
	for n := range families {
		names = append(names, n)
	}
	slices.Sort(names)
	var out Samples
	for _, n := range names {
		vec, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{}, families[n])
		if err != nil {
			return nil, fmt.Errorf("parse metrics: %w", err)
		}
		for _, v := range vec {
			s := Sample{Labels: map[string]string{}, Value: float64(v.Value)}
			for k, val := range v.Metric {
				if k == model.MetricNameLabel {
					s.Name = string(val)
				} else {
					s.Labels[string(k)] = string(val)
				}
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// Get fetches and parses one /metrics endpoint.
func Get(ctx context.Context, client *http.Client, url string) (Samples, error) {
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
	s, err := Parse(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	return s, nil
}

// Value is the value of the sample whose Series is series, e.g.
// `redms_loader_table_parked{table="public.t"}`.
func (s Samples) Value(series string) (float64, bool) {
	for _, x := range s {
		if x.Series() == series {
			return x.Value, true
		}
	}
	return 0, false
}

// Sum adds every sample named name.
func (s Samples) Sum(name string) float64 {
	var t float64
	for _, x := range s {
		if x.Name == name {
			t += x.Value
		}
	}
	return t
}

// Max is the largest sample named name, 0 when there is none.
func (s Samples) Max(name string) float64 {
	var m float64
	for _, x := range s {
		if x.Name == name && x.Value > m {
			m = x.Value
		}
	}
	return m
}

// MaxByLabel takes the largest value per value of label among the samples
// named name (two replicas may both report a table during a hand-over) and
// sums them.
func (s Samples) MaxByLabel(name, label string) float64 {
	per := map[string]float64{}
	for _, x := range s {
		if x.Name != name {
			continue
		}
		k := x.Labels[label]
		if v, ok := per[k]; !ok || x.Value > v {
			per[k] = x.Value
		}
	}
	var t float64
	for _, v := range per {
		t += v
	}
	return t
}

// Quantile estimates the q-quantile of the histogram name from its
// cumulative _bucket samples (summed across label sets with the same le),
// by linear interpolation inside the bucket, as PromQL's
// histogram_quantile does. ok is false when the histogram has no
// observations.
func (s Samples) Quantile(name string, q float64) (v float64, ok bool) {
	counts := map[float64]float64{}
	for _, x := range s {
		if x.Name != name+"_bucket" {
			continue
		}
		le, err := strconv.ParseFloat(x.Labels["le"], 64)
		if err != nil {
			continue
		}
		counts[le] += x.Value
	}
	bounds := make([]float64, 0, len(counts))
	for le := range counts {
		bounds = append(bounds, le)
	}
	slices.Sort(bounds)
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
