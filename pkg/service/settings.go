package service

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// Settings are what every redms service reads the same way. A binary's
// Config embeds them, so they are REDMS_NATS_URL and so on under the
// binary's prefix; README's configuration reference lists them with each
// binary.
//
// REDMS_METRICS_ADDR has no default here: each binary gives its own with a
// defaults tag on the embedded field, which ReadEnv applies and deploycheck
// reads, e.g.
//
//	type Config struct {
//		service.Settings `defaults:"METRICS_ADDR=:9101"`
//		...
//	}
type Settings struct {
	NATSURL         string        `envconfig:"NATS_URL" default:"nats://127.0.0.1:4222" desc:"NATS server URL(s), comma-separated"`
	Stream          string        `envconfig:"STREAM" default:"REDMS_WAL" desc:"JetStream stream that is the WAL: redms-capture creates it if missing and validates it if present; the loader only reads it"`
	MetricsAddr     string        `envconfig:"METRICS_ADDR" desc:"listen address of /metrics, /healthz and /readyz (empty = off)"`
	LogLevel        string        `envconfig:"LOG_LEVEL" default:"info" desc:"log level: debug, info, warn, error"`
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"20s" desc:"on SIGTERM, how long stopping may take: capture waits this long for publishes in flight to be acknowledged before its last confirm; the loader lets applies in progress finish for 3/4 of it, then abandons them un-acked and releases its leases"`
	SentryDSN       string        `envconfig:"SENTRY_DSN" default:"" desc:"Sentry DSN: every error log line and a panic become events (empty = off)"`
	PprofAddr       string        `envconfig:"PPROF_ADDR" default:"" desc:"listen address of net/http/pprof (empty = off)"`
}

// Validate checks the settings every binary shares.
func (s Settings) Validate() error {
	var errs []error
	if s.Stream == "" {
		errs = append(errs, errors.New("REDMS_STREAM is empty"))
	}
	if s.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("REDMS_SHUTDOWN_TIMEOUT must be positive"))
	}
	if _, err := ParseLevel(s.LogLevel); err != nil {
		errs = append(errs, fmt.Errorf("REDMS_LOG_LEVEL: %w", err))
	}
	return errors.Join(errs...)
}

// ReadEnv fills cfg, a pointer to a struct, from the environment once:
// first the defaults tags of its embedded Settings, then
// envconfig.Process(prefix, cfg). Validating is the caller's next step.
func ReadEnv(prefix string, cfg any) error {
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("read environment: %T is not a pointer to a struct", cfg)
	}
	v = v.Elem()
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if !f.Anonymous || f.Type != reflect.TypeFor[Settings]() {
			continue
		}
		if err := applyDefaults(v.Field(i), f.Tag.Get("defaults")); err != nil {
			return fmt.Errorf("read environment: %s defaults: %w", f.Name, err)
		}
	}
	if err := envconfig.Process(prefix, cfg); err != nil {
		return fmt.Errorf("read environment: %w", err)
	}
	return nil
}

// ReadConfig reads cfg from the environment (ReadEnv) and then calls
// validate, which checks the values read and keeps what it parses; a
// validation error says the configuration is invalid.
func ReadConfig(prefix string, cfg any, validate func() error) error {
	if err := ReadEnv(prefix, cfg); err != nil {
		return err
	}
	if err := validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	return nil
}

// applyDefaults sets the string fields of s named by their envconfig key in
// tag, "KEY=value KEY2=value2".
func applyDefaults(s reflect.Value, tag string) error {
	for pair := range strings.FieldsSeq(tag) {
		key, value, ok := strings.Cut(pair, "=")
		if !ok {
			return fmt.Errorf("%q is not KEY=value", pair)
		}
		found := false
		for i := range s.NumField() {
			if s.Type().Field(i).Tag.Get("envconfig") == key && s.Field(i).Kind() == reflect.String {
				s.Field(i).SetString(value)
				found = true
			}
		}
		if !found {
			return fmt.Errorf("no string setting %s", key)
		}
	}
	return nil
}
