package load

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// WriteJSON writes s as exactly one JSON object and a newline.
func (s *Summary) WriteJSON(w io.Writer) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// WriteText writes the human summary.
func (s *Summary) WriteText(w io.Writer) {
	fmt.Fprintf(w, "target %.1f req/s, achieved %.1f req/s over %.1fs\n", s.TargetRate, s.AchievedRate, s.DurationS)
	fmt.Fprintf(w, "sent %d, answered %d, not sent (in-flight cap) %d\n", s.Sent, s.Answered, s.NotSent)
	fmt.Fprintf(w, "ops      %s\n", counts(s.Ops))
	fmt.Fprintf(w, "start lag (generator) p99 %.2fms  max %.2fms\n", s.StartLag.P99, s.StartLag.Max)
	writeSlice(w, "", s.Latency, s.Status, s.Errors, s.Channels)
	if len(s.Phases) > 0 {
		fmt.Fprintf(w, "scenario %s on %s (fault from 1/3 to 2/3 of the run)\n", s.Scenario, s.FaultChannel)
		for _, p := range s.Phases {
			fmt.Fprintf(w, "phase %s: sent %d, answered %d\n", p.Name, p.Sent, p.Answered)
			writeSlice(w, "  ", p.Latency, p.Status, p.Errors, p.Channels)
		}
	}
}

func writeSlice(w io.Writer, indent string, l Latency, status map[string]int64, e Errors, channels map[string]int64) {
	fmt.Fprintf(w, "%slatency  p50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms\n", indent, l.P50, l.P90, l.P99, l.Max)
	fmt.Fprintf(w, "%sstatus   %s\n", indent, counts(status))
	fmt.Fprintf(w, "%serrors   timeout %d  connect %d  other %d\n", indent, e.Timeout, e.Connect, e.Other)
	fmt.Fprintf(w, "%schannels %s\n", indent, counts(channels))
}

func counts(m map[string]int64) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, "  ")
}
