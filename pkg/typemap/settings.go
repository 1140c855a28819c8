package typemap

import (
	"errors"
	"fmt"
)

// Warehouse are the warehouse settings redms-loader and redms-verify read
// the same way: verify compares what the loader wrote, so it must reach the
// same warehouse, find the same schemas and map every column type as the
// loader did, and one environment file serves both. Each binary's Config
// embeds them, so they are REDMS_WAREHOUSE_URL and so on under the binary's
// prefix (README's configuration reference lists them with each binary);
// Parse checks them and returns the dialect and mapping options both use.
//
// They live here because the dialect and mapping options they parse into
// are this package's types.
type Warehouse struct {
	WarehouseURL     string `envconfig:"WAREHOUSE_URL" default:"" desc:"connection string of the warehouse (Postgres, or Redshift with sslmode as the URL gives it); required"`
	WarehouseDialect string `envconfig:"WAREHOUSE_DIALECT" default:"postgres" desc:"warehouse dialect: postgres or redshift"`
	TargetSchema     string `envconfig:"TARGET_SCHEMA" default:"" desc:"warehouse schema of the target tables (empty = the source schema)"`
	StateSchema      string `envconfig:"STATE_SCHEMA" default:"public" desc:"warehouse schema of the loader's state tables (redms_state_<hash>_<table>, one per target, holding its applied source position, which redms-verify reads to confirm a difference)"`
	NumericDefault   string `envconfig:"NUMERIC_DEFAULT" default:"19,8" desc:"precision,scale of the warehouse type of numeric columns without a typmod"`
	RedshiftJSON     string `envconfig:"REDSHIFT_JSON" default:"varchar" desc:"Redshift type of json and jsonb columns: varchar (VARCHAR(65535), text form) or super (SUPER, queryable with PartiQL; redms-verify cannot compare it); the postgres dialect keeps varchar"`
	RedshiftBytea    string `envconfig:"REDSHIFT_BYTEA" default:"varchar" desc:"Redshift type of bytea columns: varchar (VARCHAR(65535), hex text) or varbyte (VARBYTE(1048576)); the postgres dialect keeps varchar"`
}

// Parse checks the settings and returns the warehouse dialect and the
// mapping options they give. The error joins every problem found, each
// naming its variable; what parsed is returned beside it.
func (w Warehouse) Parse() (Dialect, Options, error) {
	var (
		errs    []error
		dialect Dialect
		opt     Options
	)
	if w.WarehouseURL == "" {
		errs = append(errs, errors.New("REDMS_WAREHOUSE_URL is required"))
	}
	switch d := Dialect(w.WarehouseDialect); d {
	case Postgres, Redshift:
		dialect = d
	default:
		errs = append(errs, fmt.Errorf("REDMS_WAREHOUSE_DIALECT %q: want postgres or redshift", w.WarehouseDialect))
	}
	n, err := ParseNumeric(w.NumericDefault)
	if err != nil {
		errs = append(errs, fmt.Errorf("REDMS_NUMERIC_DEFAULT: %w", err))
	}
	opt.NumericDefault = n
	switch w.RedshiftJSON {
	case "varchar", "super":
		opt.JSONSuper = w.RedshiftJSON == "super"
	default:
		errs = append(errs, fmt.Errorf("REDMS_REDSHIFT_JSON %q: want varchar or super", w.RedshiftJSON))
	}
	switch w.RedshiftBytea {
	case "varchar", "varbyte":
		opt.ByteaVarbyte = w.RedshiftBytea == "varbyte"
	default:
		errs = append(errs, fmt.Errorf("REDMS_REDSHIFT_BYTEA %q: want varchar or varbyte", w.RedshiftBytea))
	}
	return dialect, opt, errors.Join(errs...)
}
