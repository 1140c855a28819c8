package service

import (
	"errors"
	"strings"
	"testing"
	"time"
)

type demoConfig struct {
	Settings `defaults:"METRICS_ADDR=:9101"`
	Slot     string `envconfig:"SLOT" default:"redms" desc:"slot"`
}

func TestReadEnvAppliesEmbeddedDefaults(t *testing.T) {
	t.Setenv("REDMS_SLOT", "s1")
	var c demoConfig
	if err := ReadEnv("REDMS", &c); err != nil {
		t.Fatal(err)
	}
	if c.MetricsAddr != ":9101" || c.Slot != "s1" || c.Stream != "REDMS_WAL" || c.ShutdownTimeout != 20*time.Second {
		t.Fatalf("config %+v", c)
	}
	// An empty variable still turns the server off.
	t.Setenv("REDMS_METRICS_ADDR", "")
	c = demoConfig{}
	if err := ReadEnv("REDMS", &c); err != nil || c.MetricsAddr != "" {
		t.Fatalf("REDMS_METRICS_ADDR= gave %q, %v", c.MetricsAddr, err)
	}
	if err := c.Settings.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

// ReadConfig validates what it read and says the configuration is invalid
// when validation fails.
func TestReadConfigValidatesWhatItRead(t *testing.T) {
	t.Setenv("REDMS_SLOT", "Bad Slot")
	var c demoConfig
	var saw string
	err := ReadConfig("REDMS", &c, func() error {
		saw = c.Slot
		return errors.New("REDMS_SLOT: not a slot name")
	})
	if saw != "Bad Slot" {
		t.Fatalf("validate saw slot %q, want the value read", saw)
	}
	if err == nil || err.Error() != "invalid configuration: REDMS_SLOT: not a slot name" {
		t.Fatalf("ReadConfig = %v", err)
	}
	if err := ReadConfig("REDMS", &c, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestReadEnvRejectsUnknownDefault(t *testing.T) {
	var c struct {
		Settings `defaults:"METRICS_PORT=1"`
	}
	if err := ReadEnv("REDMS", &c); err == nil || !strings.Contains(err.Error(), "METRICS_PORT") {
		t.Fatalf("ReadEnv = %v, want an error naming METRICS_PORT", err)
	}
}

func TestSettingsValidate(t *testing.T) {
	err := Settings{LogLevel: "loud"}.Validate()
	for _, want := range []string{"REDMS_STREAM", "REDMS_SHUTDOWN_TIMEOUT", "REDMS_LOG_LEVEL"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to name %s", err, want)
		}
	}
}
