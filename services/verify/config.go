package main

import (
	"errors"
	"strings"
	"time"

	"github.com/redms/redms/pkg/service"
	"github.com/redms/redms/pkg/typemap"
	"github.com/redms/redms/services/verify/internal/compare"
)

// Config is redms-verify's configuration, read once from REDMS_* variables
// by readConfig, which validates it and keeps the parsed values. README.md's
// reference is generated from these tags. The warehouse settings are the
// loader's own, typemap.Warehouse, so one environment file serves both and
// verify maps types as the loader did.
type Config struct {
	service.Settings `defaults:"METRICS_ADDR=:9110"`
	typemap.Warehouse

	SourceURL string `envconfig:"SOURCE_URL" default:"" desc:"connection string of the source database (required)"`

	VerifyTables   string        `envconfig:"VERIFY_TABLES" default:"" desc:"comma-separated schema.table to compare when none are named on the command line (empty = every table of the source)"`
	ConfirmTimeout time.Duration `envconfig:"VERIFY_CONFIRM_TIMEOUT" default:"1m" desc:"how long a difference waits for the table's applied position to pass the source read before it is reported unconfirmed"`
	MaxDiffs       int           `envconfig:"VERIFY_MAX_DIFFS" default:"1000" desc:"differences listed per table (the counts are complete)"`
	RepairTimeout  time.Duration `envconfig:"VERIFY_REPAIR_TIMEOUT" default:"30m" desc:"with --repair, how long to wait for the requested snapshots to be performed by redms-capture and applied in the warehouse (then exit 2)"`
	Database       string        `envconfig:"DATABASE" default:"" desc:"with --repair, the database token of KV keys, as capture's REDMS_DATABASE (default: the source's current_database())"`

	// Parsed by Validate.
	opts compare.Options
	// repairPoll is how often --repair reads the snapshot status.
	repairPoll time.Duration
}

// readConfig reads the environment and validates it.
func readConfig() (Config, error) {
	var cfg Config
	err := service.ReadConfig("REDMS", &cfg, cfg.Validate)
	return cfg, err
}

// Validate checks the configuration and keeps what it parsed in opts.
func (c *Config) Validate() error {
	var errs []error
	if err := c.Settings.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.SourceURL == "" {
		errs = append(errs, errors.New("REDMS_SOURCE_URL is required"))
	}
	o := compare.Options{TargetSchema: c.TargetSchema, StateSchema: c.StateSchema, ConfirmTimeout: c.ConfirmTimeout, MaxDiffs: c.MaxDiffs}
	var err error
	if o.Dialect, o.Map, err = c.Warehouse.Parse(); err != nil {
		errs = append(errs, err)
	}
	if c.RepairTimeout <= 0 {
		errs = append(errs, errors.New("REDMS_VERIFY_REPAIR_TIMEOUT must be positive"))
	}
	c.repairPoll = 500 * time.Millisecond
	if c.ConfirmTimeout <= 0 {
		errs = append(errs, errors.New("REDMS_VERIFY_CONFIRM_TIMEOUT must be positive"))
	}
	o.Tables = parseTables(c.VerifyTables)
	c.opts = o
	return errors.Join(errs...)
}

func parseTables(s string) []compare.Name {
	var out []compare.Name
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, compare.ParseName(f))
		}
	}
	return out
}
