// Command redms-rsemu is the Redshift emulator: a Postgres-wire server that
// accepts the Redshift SQL redms uses, runs it on a real Postgres and
// answers (and fails) like Redshift. It is a test tool, not a database.
//
//	redms-rsemu --listen :5439 --postgres postgres://postgres@127.0.0.1:5432/dev \
//	    --s3-endpoint http://127.0.0.1:9000 [--s3-region us-east-1 \
//	    --s3-access-key-id KEY --s3-secret-access-key SECRET]
//
// Every flag has an environment equivalent REDMS_RSEMU_<NAME> (flags win).
// When ready it prints one JSON log line {"msg":"listening","addr":…}.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/redms/redms/pkg/service"
	"github.com/redms/redms/services/rsemu/emu"
)

// env is the emulator's environment configuration (prefix REDMS_RSEMU).
type env struct {
	Listen            string `envconfig:"LISTEN" default:":5439" desc:"address to accept Redshift clients on"`
	Postgres          string `envconfig:"POSTGRES" desc:"backing Postgres URL; a client's database name replaces its database"`
	S3Endpoint        string `envconfig:"S3_ENDPOINT" desc:"S3-compatible endpoint COPY reads s3:// URLs from (path-style); empty = AWS"`
	S3Region          string `envconfig:"S3_REGION" default:"us-east-1" desc:"S3 region"`
	S3AccessKeyID     string `envconfig:"S3_ACCESS_KEY_ID" desc:"S3 access key id used unless a COPY names its own keys"`
	S3SecretAccessKey string `envconfig:"S3_SECRET_ACCESS_KEY" desc:"S3 secret access key"`
	Isolation         string `envconfig:"ISOLATION" default:"snapshot" desc:"isolation level of sessions of databases without ALTER DATABASE … ISOLATION LEVEL: snapshot or serializable"`
	LogLevel          string `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "redms-rsemu:", err)
		os.Exit(1)
	}
}

func run() error {
	var e env
	if err := envconfig.Process("REDMS_RSEMU", &e); err != nil {
		return fmt.Errorf("read environment: %w", err)
	}
	fs := flag.NewFlagSet("redms-rsemu", flag.ContinueOnError)
	fs.StringVar(&e.Listen, "listen", e.Listen, "address to accept Redshift clients on (REDMS_RSEMU_LISTEN)")
	fs.StringVar(&e.Postgres, "postgres", e.Postgres, "backing Postgres URL (REDMS_RSEMU_POSTGRES)")
	fs.StringVar(&e.S3Endpoint, "s3-endpoint", e.S3Endpoint, "S3 endpoint for COPY (REDMS_RSEMU_S3_ENDPOINT)")
	fs.StringVar(&e.S3Region, "s3-region", e.S3Region, "S3 region (REDMS_RSEMU_S3_REGION)")
	fs.StringVar(&e.S3AccessKeyID, "s3-access-key-id", e.S3AccessKeyID, "S3 access key id (REDMS_RSEMU_S3_ACCESS_KEY_ID)")
	fs.StringVar(&e.S3SecretAccessKey, "s3-secret-access-key", e.S3SecretAccessKey, "S3 secret access key (REDMS_RSEMU_S3_SECRET_ACCESS_KEY)")
	fs.StringVar(&e.Isolation, "isolation", e.Isolation, "snapshot or serializable (REDMS_RSEMU_ISOLATION)")
	fs.StringVar(&e.LogLevel, "log-level", e.LogLevel, "log level (REDMS_RSEMU_LOG_LEVEL)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: redms-rsemu --listen :5439 --postgres URL [--s3-endpoint URL] [--s3-region R] [--s3-access-key-id K --s3-secret-access-key S]")
		fs.PrintDefaults()
		_ = envconfig.Usagef("REDMS_RSEMU", &e, fs.Output(), envconfig.DefaultTableFormat)
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	p, err := service.New(service.Options{Name: "redms-rsemu", Log: os.Stdout}, service.Settings{LogLevel: e.LogLevel, ShutdownTimeout: shutdownTimeout})
	if err != nil {
		return err
	}
	defer p.Close()
	return p.Run(context.Background(), func(ctx context.Context) error {
		srv, err := emu.Start(ctx, emu.Config{
			Listen: e.Listen, PostgresURL: e.Postgres, S3Endpoint: e.S3Endpoint, S3Region: e.S3Region,
			S3AccessKeyID: e.S3AccessKeyID, S3SecretAccessKey: e.S3SecretAccessKey, Isolation: e.Isolation, Logger: p.Log,
		})
		if err != nil {
			return err
		}
		p.Log.Info("listening", "addr", srv.Addr())
		select {
		case <-ctx.Done():
		case <-srv.Done():
		}
		p.Log.Info("shutting down")
		return srv.Close()
	})
}

// shutdownTimeout bounds closing the server and its sessions.
const shutdownTimeout = 5 * time.Second
